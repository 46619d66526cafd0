"""Authentication and permits for every request, before its resource runs."""
import logging

from ..web.access_log import KEY_NAME_ENVIRON
from ..web.log_text import quoted_log_field
from . import errors, permits
from .caller import Caller
from .keys import token_from_headers

log = logging.getLogger('balance_api.auth')

AUTH_OFF_HEADER = 'X-Balance-Auth'


class Authentication:
    """Verify the request's key and the permit its operation needs.

    Puts the ``Caller`` on ``req.context.caller`` for the resources, which
    check a user-bound key's user themselves (only they know whose data a
    request is about).
    """

    def __init__(self, authenticator):
        self.authenticator = authenticator

    def process_resource(self, req, resp, resource, params):
        if permits.is_public(resource):
            req.context.caller = None
            return
        token = None
        try:
            token = token_from_headers(req.get_header('Authorization'),
                                       req.get_header('X-Client-Authorization'))
            if token is None:
                raise errors.MissingCredentials()
            caller = self._verify(token)
            req.env[KEY_NAME_ENVIRON] = caller.key_name
            needed = permits.required(resource, req.method)
            if not caller.may(needed):
                raise errors.MissingPermit(caller.key_name)
        except errors.ApiError as refused:
            self._log_refusal(req, refused)
            raise
        req.context.caller = caller

    def _verify(self, token):
        db = self.authenticator.db
        if not db.is_closed():
            return self.authenticator.caller(token)
        # A resource that opens no connection of its own (a stream).
        with db.connection_context():
            return self.authenticator.caller(token)

    @staticmethod
    def _log_refusal(req, refused):
        # The key's name where it is known (never the token).
        name = refused.detail if isinstance(refused.detail, str) else None
        log.warning('refused %s %s from %s: %d %s%s', req.method, quoted_log_field(req.path),
                    getattr(req.context, 'client', None) or req.remote_addr, refused.code,
                    refused.message,
                    ' (key %s)' % name if name else '')


class AuthOff:
    """``BALANCE_API_AUTH=off``: anyone may do anything, and every answer says so."""

    HEADER = (AUTH_OFF_HEADER, 'off')

    def process_resource(self, req, resp, resource, params):
        req.context.caller = Caller.anyone()

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header(*self.HEADER)
