"""The gunicorn worker: a sync worker that refuses malformed requests in the API's terms.

gunicorn refuses what its parser cannot accept (a control character in a
header, two Content-Lengths, a request line over ``limit_request_line``...)
before the application sees the request, and answers with an HTML page of
its own. Here every such refusal is the API's JSON error with its numbered
code, an X-Request-ID, and one line in the error log under that id.
"""
import datetime
import json
import re
import socket
import ssl

from gunicorn import util
from gunicorn.http import errors as parse_errors
from gunicorn.http.body import LengthReader
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.sync import SyncWorker

from .. import errors
from . import secret_paths
from .log_text import quoted_log_field
from .middleware import REQUEST_ID_HEADER, request_id

# Refusals with a status of their own; every other parse error is a bad request.
_REFUSALS = (
    (parse_errors.LimitRequestLine, errors.RequestLineTooLong),
    (parse_errors.LimitRequestHeaders, errors.HeaderFieldsTooLarge),
    (parse_errors.ExpectationFailed, errors.ExpectationNotSupported),
    (parse_errors.UnsupportedTransferCoding, errors.TransferCodingNotImplemented),
)
# Faults of the server or the application, not of the request.
_FAILURES = (parse_errors.InvalidResponseHeader, parse_errors.InvalidResponseHeaderName,
             parse_errors.ConfigurationProblem)
# RFC 9110 5.6.2.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def error_for(exc):
    """The API error that answers a request gunicorn failed on with ``exc``."""
    if isinstance(exc, _FAILURES):
        return errors.InternalError()
    for parse_error, api_error in _REFUSALS:
        if isinstance(exc, parse_error):
            return api_error()
    if isinstance(exc, parse_errors.InvalidRequestMethod):
        # Methods are case-sensitive: "get" is a method nobody implements;
        # what is not even a token is no method at all.
        if _TOKEN.fullmatch(str(getattr(exc, 'method', ''))):
            return errors.MethodNotImplemented()
        return errors.BadRequest()
    if isinstance(exc, (parse_errors.ParseException, ssl.SSLError)):
        return errors.BadRequest()
    return errors.InternalError()


def _client_request_id(req):
    # Only a request whose headers were all read has them.
    for name, value in getattr(req, 'headers', None) or ():
        if name == REQUEST_ID_HEADER.upper():
            return value
    return None


def read_to_the_end(req):
    """Whether the request's body was read whole and nothing was read past it."""
    reader = getattr(getattr(req, 'body', None), 'reader', None)
    if not isinstance(reader, LengthReader) or reader.length:
        return False
    buffered = getattr(getattr(req, 'unreader', None), 'buf', None)
    return buffered is not None and not buffered.getbuffer().nbytes


def close_if_nothing_pending(client):
    """Close ``client`` now if it has sent nothing more; True when closed.

    Unread bytes in the receive buffer would turn the close into a reset,
    which can cut the answer short; with none, a close sends the answer and
    then FIN like any other.
    """
    try:
        pending = client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        pending = b''
    except OSError:
        return False
    if pending:
        return False
    client.close()
    return True


class ApiSyncWorker(SyncWorker):
    """gunicorn's sync worker, whose refusals are the API's JSON errors."""

    def handle_request(self, listener, req, client, addr):
        super().handle_request(listener, req, client, addr)
        # gunicorn then lingers on every connection until the client closes
        # its side (util.close_graceful), so that a body left unread cannot
        # reset the answer away; a sync worker waits a round trip to the
        # client per request for that (a sixth of its time under load). An
        # answered request whose body was read whole leaves nothing to wait
        # for; gunicorn's close of the closed socket is then a no-op.
        if read_to_the_end(req):
            close_if_nothing_pending(client)

    def handle_error(self, req, client, addr, exc):
        started = datetime.datetime.now()
        error = error_for(exc)
        # A header error carries the request read so far, for the access log.
        req = req or getattr(exc, 'req', None)
        answered_as = request_id(_client_request_id(req))
        peer = (addr or ('-', -1))[0] or '-'
        # A parse error may quote the request line, whose path may carry a key.
        reason = secret_paths.redact(str(exc))
        if isinstance(error, errors.InternalError):
            self.log.exception('request %s from %s failed: %d %s', quoted_log_field(answered_as),
                               peer, error.code, reason)
        else:
            self.log.warning('request %s from %s refused: %d %s', quoted_log_field(answered_as),
                             peer, error.code, reason)

        body = json.dumps(error.to_dict()).encode('utf-8')
        headers = [('Content-Type', 'application/json'), ('Content-Length', str(len(body))),
                   (REQUEST_ID_HEADER, answered_as), ('Connection', 'close')]
        # What every answer of the application carries, refusals made here too.
        headers += list(getattr(self.wsgi, 'headers_on_every_answer', ()))
        head = 'HTTP/1.1 %s\r\n' % error.status + ''.join(
            '%s: %s\r\n' % header for header in headers) + '\r\n'

        if req is not None and getattr(req, 'version', None) is not None:
            environ = default_environ(req, client, self.cfg)
            environ['REMOTE_ADDR'] = peer
            resp = Response(req, client, self.cfg)
            resp.status = error.status
            resp.headers = headers
            resp.sent = len(body)
            self.log.access(resp, req, environ, datetime.datetime.now() - started)

        try:
            util.write_nonblock(client, head.encode('latin-1') + body)
        except Exception:
            self.log.debug('the refusal could not be sent')
