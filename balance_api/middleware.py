"""Request plumbing: request ids, body limits, one database connection per request."""
import uuid

from . import errors

REQUEST_ID_HEADER = 'X-Request-ID'


class RequestId:
    """Tag every request with an id (the client's, if it sent a sane one) for the logs."""

    def process_request(self, req, resp):
        given = req.get_header(REQUEST_ID_HEADER)
        if given and len(given) <= 64 and given.isascii() and given.isprintable():
            req.context.request_id = given
        else:
            req.context.request_id = uuid.uuid4().hex

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
    """Open the connection when a request starts, release it when it ends.

    ``process_response`` also runs when a responder raised, so a failed
    request never keeps its connection. Streamed bodies open their own.
    Resources that never touch the database (health, documents) say so
    with ``uses_database = False`` and cost no connection.
    """

    def __init__(self, db):
        self.db = db

    def process_resource(self, req, resp, resource, params):
        if getattr(resource, 'uses_database', True):
            self.db.connect(reuse_if_open=True)

    def process_response(self, req, resp, resource, req_succeeded):
        if getattr(resource, 'uses_database', True) and not self.db.is_closed():
            self.db.close()
