"""What every resource shares: reading bodies, path ids, running and rendering commands."""
import falcon

from .. import errors, idempotency
from ..schemas import parse_user_id

FORM = 'application/x-www-form-urlencoded'
JSON = 'application/json'


def read_body(req):
    """The request's fields as a dict: form-encoded (what existing clients send) or JSON."""
    if not req.content_length:
        return {}
    media_type = (req.content_type or '').split(';', 1)[0].strip().lower()
    if media_type not in (FORM, JSON):
        raise errors.UnsupportedContentType()
    # Percent-escapes that are not UTF-8 are refused by the form handler (app.py).
    return req.get_media()


def path_user_id(text):
    user_id = parse_user_id(text)
    if user_id is None:
        raise errors.InvalidUserId()
    return user_id


class CommandRunner:
    """Runs a mutating request exactly once per Idempotency-Key and renders its outcome."""

    def __init__(self, db):
        self.db = db

    def run(self, req, resp, payload, operation):
        key = idempotency.validate_key(req.get_header('Idempotency-Key'))
        fingerprint = idempotency.fingerprint(req.method, req.path, payload) if key else None
        outcome = idempotency.execute(self.db, key, fingerprint, operation)
        resp.status = falcon.code_to_http_status(outcome.status)
        resp.media = outcome.body
        if outcome.replayed:
            resp.set_header('Idempotent-Replayed', 'true')
