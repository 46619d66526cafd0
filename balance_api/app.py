"""The application factory: wires database, middleware, routes and error handlers."""
import json
import logging
import urllib.parse
from decimal import Decimal

import falcon
import falcon.media
import peewee
import swagger_ui_bundle
from falcon.uri import parse_query_string
from playhouse.pool import MaxConnectionsExceeded

from . import errors
from .config import Settings
from .storage.db import database, open_database
from .money.ledger import Ledger
from .web.log_text import quoted_log_field
from .web.middleware import BodyLimit, DatabaseConnection, RequestId, RequestTarget
from .web.openapi import build_spec
from .money.resources import BalanceCollection, BalanceItem, Transfer, UserCollection, UserDelete
from .web.commands import CommandRunner
from .money.resources import History
from .web.meta import DocsPage, Health, OpenApiDocument, Ready

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


def _refuse_constant(name):
    raise ValueError('%s is not a number' % name)


class ExponentNumber:
    """A JSON number written with an exponent (``1e0``, ``12345e-2``).

    Amounts and ids are plain decimals, in JSON as in forms; no field accepts
    this, so each refuses it with its own code, as it would the string "1e0".
    """

    __slots__ = ('text',)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _parse_fraction(text):
    if 'e' in text or 'E' in text:
        return ExponentNumber(text)
    return Decimal(text)


def _object_without_repeated_keys(pairs):
    fields = dict(pairs)
    if len(fields) != len(pairs):
        # Which one counts would be up to the parser; the form handler refuses
        # a repeated field too.
        raise ValueError('a JSON object repeats a key')
    return fields


def _load_json(text):
    try:
        return json.loads(text, parse_float=_parse_fraction, parse_constant=_refuse_constant,
                          object_pairs_hook=_object_without_repeated_keys)
    except RecursionError:
        # Deeply nested arrays fit in a small body; they are malformed, not a crash.
        raise ValueError('JSON nested too deeply') from None


class FormHandler(falcon.media.URLEncodedFormHandler):
    """Form bodies are UTF-8, percent-escaped or not (``curl -d trans_desc=café``
    sends the bytes as they are); anything that is not UTF-8 is malformed.

    Falcon would refuse unescaped non-ASCII bytes, and decode escapes that
    are not UTF-8 to U+FFFD, which a client may also send on purpose
    (%EF%BF%BD), so the two could not be told apart afterwards.
    """

    def _deserialize(self, body):
        try:
            text = body.decode('utf-8')
            if '%' in text:
                urllib.parse.parse_qsl(text, keep_blank_values=True, encoding='utf-8',
                                       errors='strict')
        except ValueError as exc:  # UnicodeDecodeError included
            raise falcon.MediaMalformedError('URL-encoded') from exc
        return parse_query_string(text, keep_blank=self._keep_blank, csv=self._csv)


def _render(resp, error, headers=None):
    resp.status = error.status
    resp.media = error.to_dict()
    for name, value in (headers or {}).items():
        resp.set_header(name, value)


def _request_id(req):
    """The request id as a quoted log field: a client's may hold spaces and quotes."""
    return quoted_log_field(getattr(req.context, 'request_id', '-'))


def handle_api_error(req, resp, ex, params):
    if ex.status.startswith('5'):
        log.error('request %s failed: %d %s', _request_id(req), ex.code, ex.detail or ex.message)
    _render(resp, ex)


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
    _render(resp, errors.DatabaseUnavailable())


def handle_unexpected(req, resp, ex, params):
    log.exception('request %s failed unexpectedly', _request_id(req))
    _render(resp, errors.InternalError())


def create_app(settings=None, db=None):
    """Build the WSGI application. Connects to nothing until the first request."""
    settings = settings or Settings.from_env()
    db = db or open_database(settings.database_url, pool_size=settings.pool_size,
                             busy_timeout=settings.sqlite_busy_timeout)
    database.initialize(db)

    app = falcon.App(middleware=[RequestId(), RequestTarget(),
                                 BodyLimit(settings.max_body_bytes), DatabaseConnection(db)])
    json_handler = falcon.media.JSONHandler(loads=_load_json)
    app.req_options.media_handlers = falcon.media.Handlers({
        falcon.MEDIA_JSON: json_handler,
        falcon.MEDIA_URLENCODED: FormHandler(keep_blank=True),
    })
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler

    ledger = Ledger(db)
    commands = CommandRunner(db)
    app.add_route('/balance', BalanceCollection(ledger))
    app.add_route('/balance/{user_id}', BalanceItem(ledger, commands))
    app.add_route('/user', UserCollection(ledger, commands))
    app.add_route('/balance_delete_user/{user_id}', UserDelete(ledger, commands))
    app.add_route('/transfer', Transfer(ledger, commands))
    history = History(db)
    app.add_route('/history', history)
    app.add_route('/history/{query}', history)
    app.add_route('/health', Health())
    app.add_route('/ready', Ready(db))
    app.add_route('/openapi.json', OpenApiDocument(build_spec()))
    app.add_route('/api/docs', DocsPage())
    app.add_static_route('/api/docs/static', swagger_ui_bundle.swagger_ui_path)

    # Most specific first wins in Falcon, whatever the order added.
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler((peewee.OperationalError, peewee.InterfaceError,
                           MaxConnectionsExceeded), handle_database_unavailable)
    app.add_error_handler(errors.ApiError, handle_api_error)
    return app
