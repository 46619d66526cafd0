"""Streaming a query's rows as one JSON array, in constant memory.

Falcon finishes the request (and the connection middleware closes its
connection) before the WSGI server iterates a streamed body, so the stream
owns a connection of its own: it opens one when iteration starts and
releases it when the rows run out or the client goes away.
"""
import logging

from playhouse.postgres_ext import ServerSide

from .db import is_postgres

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
FETCH_ROWS = 2000


def json_array(db, make_query, render_row):
    """Yield the bytes of a JSON array of ``render_row(row)`` for each row.

    ``make_query()`` builds the query once the stream's connection is open;
    ``render_row`` returns the row's JSON text.
    """
    db.connect(reuse_if_open=True)
    try:
        # One transaction: every row comes from one snapshot of the database.
        with db.atomic():
            query = make_query()
            # psycopg2 would otherwise fetch the whole result into memory.
            rows = (ServerSide(query, array_size=FETCH_ROWS) if is_postgres(db)
                    else query.iterator())
            parts, size, separator = ['['], 1, ''
            for row in rows:
                text = separator + render_row(row)
                separator = ','
                parts.append(text)
                size += len(text)
                if size >= CHUNK_BYTES:
                    yield ''.join(parts).encode('utf-8')
                    parts, size = [], 0
            parts.append(']')
            yield ''.join(parts).encode('utf-8')
    except GeneratorExit:
        raise
    except Exception:
        # The status line is already sent; the client sees a truncated array.
        log.exception('streamed response failed part way')
        raise
    finally:
        db.close()
