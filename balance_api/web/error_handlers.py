"""The one place errors become answers: every failure is the numbered JSON error.

Domains raise ``balance_api.errors.ApiError``; Falcon's own HTTP errors and
a lost database are mapped to their numbered codes; anything else is logged
with the request id and answered 532, never with a stack trace.
"""
import logging

import falcon
import peewee
from playhouse.pool import MaxConnectionsExceeded

from .. import errors
from . import metrics
from .log_text import quoted_log_field

log = logging.getLogger('balance_api')

# Falcon's own errors (routing, media parsing) in the API's numbered form.
_HTTP_ERRORS = {
    404: errors.RouteNotFound,
    405: errors.MethodNotAllowed,
    411: errors.LengthRequired,
    413: errors.BodyTooLarge,
    415: errors.UnsupportedContentType,
    416: errors.RangeNotSatisfiable,
}


def _render(resp, error, headers=None):
    resp.status = error.status
    # A route whose clients expect errors in a shape of their own names it
    # (``error_body(error)``, put there by balance_api.web.middleware.RequestId).
    render = getattr(resp.context, 'error_body', None) or type(error).to_dict
    resp.media = render(error)
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


def _request_id(req):
    """The request id as a quoted log field: a client's may hold spaces and quotes."""
    return quoted_log_field(getattr(req.context, 'request_id', '-'))


def _count_database_error(ex):
    # A domain reports a failed statement as its own error, raised from the database's.
    if isinstance(ex, errors.DatabaseUnavailable):
        metrics.database_error('unavailable')
    elif isinstance(ex, peewee.DatabaseError) or isinstance(ex.__cause__, peewee.DatabaseError):
        metrics.database_error('failed')


def handle_api_error(req, resp, ex, params):
    if ex.status.startswith('5'):
        log.error('request %s failed: %d %s', _request_id(req), ex.code, ex.detail or ex.message)
        _count_database_error(ex)
    _render(resp, ex, ex.headers)


def handle_http_error(req, resp, ex, params):
    if isinstance(ex, falcon.MediaMalformedError):
        error = errors.MalformedBody()
    elif ex.status_code == 400 and req.method not in falcon.COMBINED_METHODS:
        # Falcon answers a method it does not know with a plain 400.
        error = errors.MethodNotImplemented()
    else:
        error = _HTTP_ERRORS.get(ex.status_code, errors.BadRequest)()
    _render(resp, error, ex.headers)


def handle_database_unavailable(req, resp, ex, params):
    log.warning('request %s: database unavailable: %s', _request_id(req), ex)
    metrics.database_error('unavailable')
    _render(resp, errors.DatabaseUnavailable())


def handle_unexpected(req, resp, ex, params):
    log.exception('request %s failed unexpectedly', _request_id(req))
    _count_database_error(ex)
    _render(resp, errors.InternalError())


def install(app):
    """Render every error ``app`` meets through these handlers."""
    # Most specific first wins in Falcon, whatever the order added.
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler((peewee.OperationalError, peewee.InterfaceError,
                           MaxConnectionsExceeded), handle_database_unavailable)
    app.add_error_handler(errors.ApiError, handle_api_error)
