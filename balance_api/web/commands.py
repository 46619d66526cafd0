"""What every resource shares: reading bodies, HEAD, running and rendering commands."""
import falcon

from .. import errors
from . import idempotency, metrics

FORM = 'application/x-www-form-urlencoded'
JSON = 'application/json'


def read_body(req):
    """The request's fields as a dict: form-encoded (what existing clients send) or JSON."""
    if not req.content_length:
        return {}
    # Media types are case-insensitive (RFC 9110 8.3.1); Falcon's own lookup
    # of a handler is not.
    media_type = (req.content_type or '').split(';', 1)[0].strip().lower()
    if media_type not in (FORM, JSON):
        raise errors.UnsupportedContentType()
    # Bodies that are not UTF-8 are refused by the handlers (app.py).
    handler = req.options.media_handlers[media_type]
    return handler.deserialize(req.bounded_stream, req.content_type, req.content_length)


class AnswersHead:
    """HEAD answers with the status and headers GET would, and no body (health checks use it)."""

    def on_head(self, req, resp, **params):
        self.on_get(req, resp, **params)
        # Falcon drops a HEAD answer's body without closing it, and a streamed
        # body holds its database connection until it is closed.
        close = getattr(resp.stream, 'close', None)
        if close is not None:
            close()


class CommandRunner:
    """Runs a mutating request exactly once per Idempotency-Key and renders its outcome."""

    def __init__(self, db):
        self.db = db

    def run(self, req, resp, payload, operation, path_params=None):
        """``path_params``: the path's parsed parameters, which with the route
        identify the resource whatever the path's spelling."""
        key = idempotency.validate_key(req.get_header('Idempotency-Key'))
        fingerprint = None
        if key:
            fingerprint = idempotency.fingerprint(req.method, req.uri_template,
                                                  path_params or {}, payload)
        caller = getattr(req.context, 'caller', None)
        outcome = idempotency.execute(
            self.db, key, fingerprint, operation,
            also_matching=lambda: idempotency.earlier_fingerprints(req.method, req.path, payload),
            owner=caller.idempotency_owner if caller is not None else '')
        resp.status = falcon.code_to_http_status(outcome.status)
        resp.media = outcome.body
        if outcome.replayed:
            resp.set_header('Idempotent-Replayed', 'true')
            metrics.idempotent_replay(req.uri_template)
