"""The discount codes' resources: the existing clients' two calls, and the clean form.

The existing clients' routes (``/discounts/api/v1.0/...``) answer, errors
included, in the envelope those clients read: ``{"code": "<number as
text>", "data": ..., "message": ..., "status": "success" | "error"}``.
Their claim takes the key from the path (``user_secret``), as they send
it; the logs never write that path (``balance_api.web.secret_paths``).
The clean routes take the key from a header and answer as every other
route of the service does.
"""
from urllib.parse import parse_qsl

from .. import errors as base_errors
from ..auth import permits
from ..web import streaming
from ..web.commands import AnswersHead, read_body
from ..web.idempotency import Outcome
from ..web.validation import load
from . import errors, schemas, service
from .schemas import GenerateRequest

GENERATED = 'System generated discount codes successfully'
# What the existing clients read as success, in the body's code.
SUCCESS_CODE = '201'

_generate_request = GenerateRequest()


def envelope(data='', message=''):
    """A success in the existing clients' envelope."""
    return {'code': SUCCESS_CODE, 'data': data, 'message': message, 'status': 'success'}


def legacy_error(error):
    """An error (``balance_api.errors.ApiError``) in the existing clients' envelope."""
    return {'code': str(error.code), 'data': '', 'message': error.message, 'status': 'error'}


class LegacyGenerate:
    """POST /discounts/api/v1.0/generate: ``brand_id`` and ``number_of_codes``, form or JSON."""

    permits = {'POST': permits.DISCOUNT_CODES_GENERATE}
    error_body = staticmethod(legacy_error)

    def __init__(self, db, commands):
        self.db = db
        self.commands = commands

    def on_post(self, req, resp):
        data = load(_generate_request, read_body(req))
        caller = req.context.caller

        def generate():
            # A long generation tells the server after every batch that it is alive.
            service.generate(self.db, data['brand_id'], data['number_of_codes'],
                             key_name=caller.key_name, on_batch=streaming.progress)
            return Outcome(201, envelope(message=GENERATED))

        self.commands.run(req, resp, data, generate)


class LegacyClaim:
    """GET /discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}: the user's code.

    ``user_secret`` is the token of a key bound to that user; a key bound
    to another user, or to none, is not that user's secret (907).
    """

    permits = {'GET': permits.DISCOUNT_CODES_GET}
    token_parameter = 'user_secret'
    error_body = staticmethod(legacy_error)

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, user_id, user_secret, brand_id):
        user = schemas.user_id(user_id)
        brand = schemas.brand_id(brand_id)
        caller = req.context.caller
        # With keys off there is no secret at all: the path's user is taken.
        if caller.key_name is not None and caller.uid != user:
            raise errors.SecretOfAnotherUser()
        claimed = service.claim(self.db, brand, user, key_name=caller.key_name)
        resp.media = envelope(data=claimed.code)


def _claiming_user(req):
    """The user a clean claim is for: the key's own, or the ``user_id`` an
    unbound key names (a bound key may name only its own user, 707)."""
    named = None
    for key, value in parse_qsl(req.query_string or '', keep_blank_values=True):
        if key != 'user_id' or named is not None:
            raise base_errors.UnknownField()
        named = schemas.user_id(value)
    caller = req.context.caller
    if named is not None:
        caller.check_user(named)
        return named
    if caller.uid is None:
        raise errors.UserRequired()
    return caller.uid


class BrandCode:
    """GET /discounts/{brand_id}/code: the code of the key's user (or of ``?user_id=``)."""

    permits = {'GET': permits.DISCOUNT_CODES_GET}

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, brand_id):
        brand = schemas.brand_id(brand_id)
        user = _claiming_user(req)
        claimed = service.claim(self.db, brand, user, key_name=req.context.caller.key_name)
        resp.media = {'brand_id': brand, 'user_id': user, 'code': claimed.code}


class BrandStatistics(AnswersHead):
    """GET /discounts/{brand_id}/stats: codes generated, claimed and remaining (admin)."""

    permits = {'GET': permits.ADMIN}

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, brand_id):
        resp.media = service.brand_stats(self.db, schemas.brand_id(brand_id)).to_dict()
