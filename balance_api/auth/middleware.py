"""Authentication and permits for every request, before its resource runs."""
import logging

from ..storage.db import open_for_request
from ..web import metrics, secret_paths
from ..web.access_log import KEY_NAME_ENVIRON
from ..web.middleware import falcon_answers_options, release_connection
from ..web.log_text import quoted_log_field
from . import errors, permits
from .caller import Caller
from .keys import token_from_headers, token_from_path

log = logging.getLogger('balance_api.auth')

AUTH_OFF_HEADER = 'X-Balance-Auth'

# The refusals' reasons, as the metrics name them (a key bound to another
# user is refused later, by balance_api.auth.caller).
REFUSAL_REASONS = {
    errors.MissingCredentials: 'missing_credentials',
    errors.MalformedCredentials: 'malformed_credentials',
    errors.UnknownKey: 'unknown_key',
    errors.RevokedKey: 'revoked_key',
    errors.ExpiredKey: 'expired_key',
    errors.MissingPermit: 'missing_permit',
}


def _token(req, resource, params):
    """The token the request came with: from the headers, or, for a route
    whose existing clients send it as a path segment (``token_parameter``
    names the route's parameter), from the path alone."""
    parameter = getattr(resource, 'token_parameter', None)
    if parameter is not None:
        return token_from_path(params.get(parameter), req.get_header('Authorization'),
                               req.get_header('X-Client-Authorization'))
    return token_from_headers(req.get_header('Authorization'),
                              req.get_header('X-Client-Authorization'))


def _not_a_method_of_a_path_key_route(resource, method):
    # A route that takes its key from the path has none to read for a method
    # it does not answer: Falcon refuses the method (405) instead.
    return (getattr(resource, 'token_parameter', None) is not None
            and not hasattr(resource, 'on_' + method.lower()))


class Authentication:
    """Verify the request's key and the permit its operation needs.

    Puts the ``Caller`` on ``req.context.caller`` for the resources, which
    check a user-bound key's user themselves (only they know whose data a
    request is about).
    """

    def __init__(self, authenticator):
        self.authenticator = authenticator

    def process_resource(self, req, resp, resource, params):
        if (permits.is_public(resource) or falcon_answers_options(resource, req.method)
                or _not_a_method_of_a_path_key_route(resource, req.method)):
            req.context.caller = None
            return
        token = None
        try:
            token = _token(req, resource, params)
            if token is None:
                raise errors.MissingCredentials()
            caller = self._verify(token)
            req.env[KEY_NAME_ENVIRON] = caller.key_name
            needed = permits.required(resource, req.method)
            if not caller.may(needed):
                raise errors.MissingPermit(caller.key_name)
        except errors.ApiError as refused:
            self._log_refusal(req, refused)
            metrics.auth_refused(REFUSAL_REASONS.get(type(refused), 'other'))
            raise
        req.context.caller = caller

    def _verify(self, token):
        db = self.authenticator.db
        if not db.is_closed():
            return self.authenticator.caller(token)
        # A resource that opens no connection of its own (a stream): the
        # stream takes this one over where connections are kept.
        open_for_request(db)
        try:
            return self.authenticator.caller(token)
        finally:
            release_connection(db)

    @staticmethod
    def _log_refusal(req, refused):
        # The key's name where it is known (never the token).
        name = refused.detail if isinstance(refused.detail, str) else None
        log.warning('refused %s %s from %s: %d %s%s', req.method,
                    quoted_log_field(secret_paths.loggable(req.path)),
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
