"""The API's one error type, and the errors every domain shares.

An error is a numeric code, a message and an HTTP status; clients match on
``code``. Each domain keeps its own codes in its ``errors`` module (money:
501-517, 525-528 and 542-544, points 601-629, keys 701-729); the ones here are the shared plumbing's: idempotency
keys 518-519, bodies and fields 520-524, routing, HTTP and the database
529-541. Services raise them; only the error handlers
(``balance_api.web.error_handlers``) know how they are rendered.
"""
import falcon


class ApiError(Exception):
    """Base of every error the API reports to its clients."""

    code = 500
    message = 'Internal server error'
    status = falcon.HTTP_500
    # Sent with the answer (a 401's challenge).
    headers = {}

    def __init__(self, detail=None):
        super().__init__(detail or self.message)
        self.detail = detail

    def to_dict(self):
        return {'code': self.code, 'message': self.message}


class IdempotencyKeyReused(ApiError):
    """An Idempotency-Key names one request; its retries must repeat it exactly."""
    code = 518
    message = 'Idempotency-Key was already used with a different request'
    status = falcon.HTTP_409


class InvalidIdempotencyKey(ApiError):
    """An Idempotency-Key is 1 to 255 visible ASCII characters other than a comma.

    Servers join repeated header fields with commas, so a key with one could
    be two keys sent at once.
    """
    code = 519
    message = 'Idempotency-Key format is not correct (1 to 255 visible ASCII characters, no comma)'
    status = falcon.HTTP_422


class BodyTooLarge(ApiError):
    """Request bodies are small; a large one is refused before it is read."""
    code, message, status = 520, 'Request body is too large', falcon.HTTP_413


class LengthRequired(ApiError):
    """A body must announce its size so an oversized one can be refused unread."""
    code = 521
    message = 'Request body needs a Content-Length header'
    status = falcon.HTTP_411


class UnsupportedContentType(ApiError):
    """Bodies are application/x-www-form-urlencoded or application/json."""
    code = 522
    message = 'Content type is not supported (use application/x-www-form-urlencoded or application/json)'
    status = falcon.HTTP_415


class MalformedBody(ApiError):
    """The body could not be decoded, or is not one object of fields."""
    code = 523
    message = 'Request body is malformed (expected one form or JSON object, UTF-8)'
    status = falcon.HTTP_400


class UnknownField(ApiError):
    """A body field the endpoint does not know; typos must not pass silently."""
    code, message, status = 524, 'Request has an unknown field', falcon.HTTP_422


class RouteNotFound(ApiError):
    """No endpoint lives at this path."""
    code, message, status = 529, 'Not found', falcon.HTTP_404


class MethodNotAllowed(ApiError):
    """The path exists but not with this method."""
    code, message, status = 530, 'Method not allowed', falcon.HTTP_405


class DatabaseUnavailable(ApiError):
    """The database could not be reached or stayed locked; retry with the same Idempotency-Key."""
    code = 531
    message = 'Database is unavailable, retry later'
    status = falcon.HTTP_503


class InternalError(ApiError):
    """An unexpected failure; its details are in the log under the request id."""
    code, message, status = 532, 'Internal server error', falcon.HTTP_500


class BadRequest(ApiError):
    """A request the HTTP layer refused for a reason no other code names."""
    code, message, status = 533, 'Bad request', falcon.HTTP_400


class RequestLineTooLong(ApiError):
    """The request line (method, target, version) is longer than the server reads."""
    code, message, status = 534, 'Request line is too long', falcon.HTTP_414


class HeaderFieldsTooLarge(ApiError):
    """Too many header fields, or one too long for the server to read."""
    code, message, status = 535, 'Request header fields are too large', falcon.HTTP_431


class ExpectationNotSupported(ApiError):
    """The only expectation a server can meet is Expect: 100-continue."""
    code = 536
    message = 'Expectation is not supported (only 100-continue)'
    status = falcon.HTTP_417


class MethodNotImplemented(ApiError):
    """Methods are case-sensitive; one the server does not know at all is not implemented."""
    code, message, status = 537, 'Method is not implemented', falcon.HTTP_501


class TransferCodingNotImplemented(ApiError):
    """A Transfer-Encoding the server does not know (it knows chunked, gzip, deflate, compress)."""
    code, message, status = 538, 'Transfer coding is not implemented', falcon.HTTP_501


class RangeNotSatisfiable(ApiError):
    """A Range that starts past the end of a static file."""
    code, message, status = 539, 'Requested range is not satisfiable', falcon.HTTP_416


class HostRequired(ApiError):
    """HTTP/1.1 requires a Host header on every request."""
    code, message, status = 540, 'Request needs a Host header', falcon.HTTP_400


class SchemaNotMigrated(ApiError):
    """The service serves only a database at the schema version its code
    expects: every migration it ships applied, none it does not know.

    The answer names the migrations: ``pending`` (run ``python -m balance_api
    migrate``) and ``unknown`` (applied by a newer version of the service).
    """
    code = 541
    message = 'Database schema is not the one this version expects'
    status = falcon.HTTP_503

    def __init__(self, pending=(), unknown=()):
        self.pending, self.unknown = list(pending), list(unknown)
        parts = []
        if self.pending:
            parts.append('pending migrations %s (run python -m balance_api migrate)'
                         % ', '.join(self.pending))
        if self.unknown:
            parts.append('migrations this version does not ship %s' % ', '.join(self.unknown))
        super().__init__('%s: %s' % (self.message, '; '.join(parts)))

    def to_dict(self):
        return {'code': self.code, 'message': self.detail, 'pending': self.pending,
                'unknown': self.unknown}


def all_errors():
    """Every error class, ordered by code (the README and OpenAPI list them)."""
    found, pending = [], [ApiError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not ApiError:
            found.append(cls)
    return sorted(found, key=lambda cls: cls.code)
