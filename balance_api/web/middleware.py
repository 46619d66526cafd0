"""Request plumbing: request ids, request targets, body limits, database connections."""
import os

from .. import errors
from ..storage.db import open_for_request
from .access_log import CLIENT_ENVIRON, ROUTE_ENVIRON
from .raw_path import raw_path

REQUEST_ID_HEADER = 'X-Request-ID'


def request_id(given):
    """The id a request is logged and answered under: the client's, if it sent a sane one."""
    if given and len(given) <= 64 and given.isascii() and given.isprintable():
        return given
    # 128 random bits as 32 hex digits, the shape of a uuid4's hex,
    # without building a UUID object on every request.
    return os.urandom(16).hex()


def client_address(remote, forwarded_for, trusted):
    """The client a request came from: the peer, unless the peer is a trusted
    proxy, then the nearest address in X-Forwarded-For that is not one (each
    proxy appends the address it was reached from, so only the addresses
    added by trusted proxies can be believed)."""
    if remote not in trusted or not forwarded_for:
        return remote
    hops = [hop.strip() for hop in forwarded_for.split(',') if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else remote


class ClientAddress:
    """Name the real client behind a trusted proxy, for the logs."""

    def __init__(self, trusted):
        self.trusted = frozenset(trusted)

    def process_request(self, req, resp):
        client = client_address(req.env.get('REMOTE_ADDR'),
                                req.get_header('X-Forwarded-For'), self.trusted)
        req.env[CLIENT_ENVIRON] = client
        req.context.client = client


class RequestId:
    """Tag every request with an id for the logs, and answer with it."""

    def process_request(self, req, resp):
        req.context.request_id = request_id(req.get_header(REQUEST_ID_HEADER))

    def process_resource(self, req, resp, resource, params):
        req.env[ROUTE_ENVIRON] = req.uri_template
        # How the route's errors are written, for the error handlers (the
        # refusals of the middleware after this one included).
        resp.context.error_body = getattr(resource, 'error_body', None)

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header(REQUEST_ID_HEADER, req.context.request_id)


class RequestTarget:
    """Refuse targets that routing would get wrong.

    The server decodes the path before routing, so ``/balance%2F3`` would
    reach ``/balance/3``: an encoded slash is no route at all. An HTTP/1.1
    request without Host is malformed (RFC 9112 3.2).
    """

    def process_request(self, req, resp):
        if req.env.get('SERVER_PROTOCOL') == 'HTTP/1.1' and 'HTTP_HOST' not in req.env:
            raise errors.HostRequired()
        sent = raw_path(req.env)
        if sent is not None and '%2f' in sent.lower():
            raise errors.RouteNotFound()


class BodyLimit:
    """Refuse oversized bodies from their Content-Length, before reading them.

    A resource whose requests are larger by nature (a batch) may declare a
    larger ``max_body_bytes`` of its own; the setting still applies when it
    is larger.
    """

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes

    def process_resource(self, req, resp, resource, params):
        limit = max(self.max_bytes, getattr(resource, 'max_body_bytes', 0))
        if req.content_length is not None:
            if req.content_length > limit:
                raise errors.BodyTooLarge()
        elif 'chunked' in (req.get_header('Transfer-Encoding') or '').lower():
            raise errors.LengthRequired()


# Whether a thread keeps its connection between requests (keep_connections).
_keep_connections = False


def keep_connections(keep=True):
    """Let each thread keep its database connection from one request to the next.

    Only for a server that runs one request at a time per process, as a sync
    gunicorn worker does (``balance_api.web.server`` turns it on there): with
    threads or greenlets, connections kept by idle ones would leave the
    others waiting on an empty pool. WSGI's ``wsgi.multithread`` cannot
    tell: greenlet servers may report false.
    """
    global _keep_connections
    _keep_connections = keep


def release_connection(db):
    """Done with the calling thread's connection for this request: back to
    the pool, or kept for the thread's next request where ``keep_connections``
    is on (for code that opened it outside ``DatabaseConnection``: streams,
    the key check of a resource that uses no connection of its own)."""
    if not _keep_connections and not db.is_closed():
        db.close()


def falcon_answers_options(resource, method):
    """Whether Falcon answers this OPTIONS itself (the route's methods in Allow,
    as the public API document states them): what a browser's CORS preflight
    asks, which needs neither a key nor the database."""
    return method == 'OPTIONS' and not hasattr(resource, 'on_options')


def _uses_database(resource, method):
    return (getattr(resource, 'uses_database', True)
            and not falcon_answers_options(resource, method))


class DatabaseConnection:
    """A database connection for every request that uses one.

    By default it is checked out of the pool when the request starts and
    back in when it ends. Where ``keep_connections`` is on, the thread
    keeps it for its next request instead (about a tenth of a sync worker's
    work for a deposit, see bench/README.md); before each request the kept
    connection gets the checks the pool makes (``open_for_request``), so
    one the database closed, one older than the pool's ``stale_timeout``
    and one left in a transaction are replaced, as before.

    ``process_response`` also runs when a responder raised. Streamed bodies
    open their own connection. Resources that never touch the database
    (health, documents) say so with ``uses_database = False``.
    """

    def __init__(self, db):
        self.db = db

    def process_resource(self, req, resp, resource, params):
        if _uses_database(resource, req.method):
            open_for_request(self.db)

    def process_response(self, req, resp, resource, req_succeeded):
        if (not _keep_connections and _uses_database(resource, req.method)
                and not self.db.is_closed()):
            self.db.close()
