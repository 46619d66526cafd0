"""Answering with a query's rows as one JSON array, in constant memory.

The query selects one column, each row's JSON text, written by the
database (see ``balance_api.storage.sql_json`` and ``balance_api.money.pg_sql``), so a
row costs the worker a string join.

Most answers are small: the query is first run for at most FETCH_ROWS + 1
rows, one statement, and when that is all there is the answer is sent in
one piece with a Content-Length. Otherwise the whole query runs again,
streamed from one snapshot (the probe's rows are not reused, so the
answer never mixes two snapshots).

Falcon finishes the request, running the middleware's ``process_response``,
before the WSGI server iterates a streamed body, so a streaming resource
declares ``uses_database = False`` and the stream owns its connection. The
connection is opened and the query executed in the responder, so a failure
to reach the database is still answered with a numbered JSON error; the
rest of the rows are fetched as the server sends them, and the cursor,
transaction and connection are released when the rows run out or the
client goes away.
"""
import contextlib
import logging

import falcon

from ..storage import pg
from ..storage.db import is_postgres, open_for_request
from .middleware import release_connection

log = logging.getLogger(__name__)

# Rows per fetch, and so per chunk of a streamed body (a history row is
# about 200 bytes).
FETCH_ROWS = 5000

# Called after every chunk of a streamed body has been handed to the server.
_progress = None


def report_progress_to(callback):
    """Call ``callback()`` after every chunk of every streamed answer (None: no one).

    gunicorn kills a sync worker that has not checked in for ``timeout``
    seconds, and a sync worker checks in only between requests: without
    this, an export longer than 30 s (10,000,000 rows take about 40) is cut
    off as a stuck worker. ``balance_api.web.server`` makes each worker's
    heartbeat the callback, so only a stream that stops moving for that
    long (a client that stopped reading) is taken for stuck.
    """
    global _progress
    _progress = callback


def progress():
    """Tell the server a long answer is still moving (the callback of
    ``report_progress_to``); for streams built elsewhere, and for work that
    sends nothing for a long time (a manifest hashes a whole export first)."""
    if _progress is not None:
        _progress()


def respond(resp, db, statement):
    """Answer with the rows of ``statement(at_most)``, an ``(sql, params)``
    pair; ``at_most`` caps the number of rows (None: all of them)."""
    resp.content_type = falcon.MEDIA_JSON
    resources = contextlib.ExitStack()
    try:
        open_for_request(db)
        resources.callback(release_connection, db)
        sql, params = statement(FETCH_ROWS + 1)
        if is_postgres(db):
            rows = pg.run(db, sql, params).fetchall()
        else:
            rows = db.execute_sql(sql, params).fetchall()
        if len(rows) <= FETCH_ROWS:
            resources.close()
            resp.data = _array_text(rows, '[', ']')
            return
        # One transaction: every row comes from one snapshot of the database.
        resources.enter_context(db.atomic())
        sql, params = statement(None)
        if is_postgres(db):
            # A server-side cursor: psycopg2 would otherwise fetch the whole
            # result into memory.
            cursor = pg.ServerCursor(db, sql, params, FETCH_ROWS)
        else:
            cursor = db.execute_sql(sql, params)
        first = cursor.fetchmany(FETCH_ROWS)
    except BaseException:
        resources.close()
        raise
    resp.stream = _Stream(resources, first, cursor)


def _array_text(rows, opening, closing):
    return (opening + ','.join([row[0] for row in rows]) + closing).encode('utf-8')


class _Stream:
    """The response body. The WSGI server calls ``close()`` when it is done,
    even if it never iterated, so the connection is released either way."""

    def __init__(self, resources, first, cursor):
        self.resources = resources
        self.chunks = _chunks(resources, first, cursor)

    def __iter__(self):
        return self.chunks

    def close(self):
        self.chunks.close()
        self.resources.close()


def _chunks(resources, rows, cursor):
    with resources:
        opening = '['
        try:
            while True:
                following = cursor.fetchmany(FETCH_ROWS) if len(rows) == FETCH_ROWS else []
                # A short batch is the last one.
                yield _array_text(rows, opening, '' if following else ']')
                if _progress is not None:
                    _progress()
                if not following:
                    return
                rows, opening = following, ','
        except Exception:
            # The status line is already sent; the client sees a truncated array.
            log.exception('streamed response failed part way')
            raise
