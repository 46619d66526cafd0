"""Request plumbing: request ids, body limits, database connections."""
import os

from . import errors
from .db import open_for_request

REQUEST_ID_HEADER = 'X-Request-ID'


class RequestId:
    """Tag every request with an id (the client's, if it sent a sane one) for the logs."""

    def process_request(self, req, resp):
        given = req.get_header(REQUEST_ID_HEADER)
        if given and len(given) <= 64 and given.isascii() and given.isprintable():
            req.context.request_id = given
        else:
            # 128 random bits as 32 hex digits, the shape of a uuid4's hex,
            # without building a UUID object on every request.
            req.context.request_id = os.urandom(16).hex()

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header(REQUEST_ID_HEADER, req.context.request_id)


class BodyLimit:
    """Refuse oversized bodies from their Content-Length, before reading them."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes

    def process_request(self, req, resp):
        if req.content_length is not None:
            if req.content_length > self.max_bytes:
                raise errors.BodyTooLarge()
        elif 'chunked' in (req.get_header('Transfer-Encoding') or '').lower():
            raise errors.LengthRequired()


class DatabaseConnection:
    """A database connection for every request that uses one.

    A server that runs the application in one thread per process (a sync
    gunicorn worker; WSGI's ``wsgi.multithread`` is false) serves one
    request at a time, so the thread keeps its connection from one request
    to the next instead of checking it in and out of the pool each time
    (about a tenth of the worker's work for a deposit, see bench/README.md).
    Before each request the kept connection gets the checks of a pool
    checkout (``balance_api.db.open_for_request``), so one the database
    closed meanwhile is replaced, as before. A threaded server gets the
    connection back after every request: threads beyond the pool size must
    never wait for a connection kept by an idle thread.

    ``process_response`` also runs when a responder raised. Streamed bodies
    open their own connection. Resources that never touch the database
    (health, documents) say so with ``uses_database = False``.
    """

    def __init__(self, db):
        self.db = db

    def process_resource(self, req, resp, resource, params):
        if getattr(resource, 'uses_database', True):
            open_for_request(self.db)

    def process_response(self, req, resp, resource, req_succeeded):
        if (getattr(resource, 'uses_database', True) and not self.db.is_closed()
                and req.env.get('wsgi.multithread', True)):
            self.db.close()
