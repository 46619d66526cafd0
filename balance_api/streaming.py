"""Streaming a query's rows as one JSON array, in constant memory.

Falcon finishes the request, running the middleware's ``process_response``,
before the WSGI server iterates a streamed body, so a streamed resource
declares ``uses_database = False`` and the stream owns its connection. The
connection is opened and the query executed in the responder, so a failure
to reach the database is still answered with a numbered JSON error; the
rest of the rows are fetched as the server sends them, and the cursor,
transaction and connection are released when the rows run out or the
client goes away.
"""
import contextlib
import logging

from playhouse.postgres_ext import ServerSideQuery

from .db import is_postgres

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
FETCH_ROWS = 2000


def json_array(db, make_query, render_row):
    """Start ``make_query()`` and return an iterator over the bytes of a JSON
    array of ``render_row(row)`` (each row's JSON text)."""
    resources = contextlib.ExitStack()
    try:
        db.connect(reuse_if_open=True)
        resources.callback(db.close)
        # One transaction: every row comes from one snapshot of the database.
        resources.enter_context(db.atomic())
        query = make_query()
        if is_postgres(db):
            # psycopg2 would otherwise fetch the whole result into memory.
            cursor = ServerSideQuery(query, array_size=FETCH_ROWS)
            resources.callback(cursor.close)
            rows = cursor.iterator()
        else:
            rows = query.iterator()
        first = next(rows, None)
    except BaseException:
        resources.close()
        raise
    return _Stream(resources, first, rows, render_row)


class _Stream:
    """The response body. The WSGI server calls ``close()`` when it is done,
    even if it never iterated, so the connection is released either way."""

    def __init__(self, resources, first, rows, render_row):
        self.resources = resources
        self.chunks = _chunks(resources, first, rows, render_row)

    def __iter__(self):
        return self.chunks

    def close(self):
        self.chunks.close()
        self.resources.close()


def _chunks(resources, first, rows, render_row):
    with resources:
        if first is None:
            yield b'[]'
            return
        parts = ['[', render_row(first)]
        size = len(parts[1])
        try:
            for row in rows:
                text = ',' + render_row(row)
                parts.append(text)
                size += len(text)
                if size >= CHUNK_BYTES:
                    yield ''.join(parts).encode('utf-8')
                    parts, size = [], 0
        except Exception:
            # The status line is already sent; the client sees a truncated array.
            log.exception('streamed response failed part way')
            raise
        parts.append(']')
        yield ''.join(parts).encode('utf-8')
