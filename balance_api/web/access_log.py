"""gunicorn's access log, written for a fraction of its usual cost.

gunicorn's stock ``access()`` builds a dictionary of every request header,
response header and WSGI environment variable for each request, in case the
format names one: about 0.15-0.19 ms of worker CPU per request, nearly a
third of what a whole ``/health`` request costs (bench/README.md). This logger writes the
same Apache combined line from the few values it needs, and appends what an
operator of this service looks for: the request time in seconds and the
request id the service answered with (``X-Request-ID``), so a log line leads
to the error log's entry for the same request.

    127.0.0.1 - shop-1 [23/Nov/2026:22:30:00 +0000] "PUT /transfer HTTP/1.1" 200 57 "-" "curl/8.5.0" 0.001234 "5f0c..."

The user field names the API key the request was made with (``-`` when
none was verified); never its token. A path that carries a token (a route
whose existing clients send their key in it, ``balance_api.web.secret_paths``)
is written as its route's template, in every format.

Every field is escaped as Apache escapes it (``balance_api.web.log_text``): a
header may carry C1 controls such as U+0085, which gunicorn's parser lets
through and which would split the line.

A deployment that sets its own ``access_log_format`` gets gunicorn's
formatting of it, unchanged.

The application's own log (logger ``balance_api``) goes where gunicorn's
error log goes, in its format (time, pid, level), one line per record:
tracebacks included, line breaks are escaped. A deployment that configures
logging itself (``logconfig_dict`` and the like) keeps its configuration.

``LOG_FORMAT=json`` (read from the environment when gunicorn sets the
logger up, so ``gunicorn -c gunicorn.conf.py`` and ``python -m balance_api
serve`` both follow it) makes every line one JSON object, ASCII only
(``json.dumps`` escapes line breaks and every other control). An access line:

    {"time": "2026-11-23T22:30:00.123Z", "request_id": "5f0c...", "method": "PUT",
     "route": "/transfer", "path": "/transfer", "status": 200, "duration": 0.001234,
     "bytes": 57, "key": "shop-1", "client": "127.0.0.1", "user_agent": "curl/8.5.0"}

``route`` is the matched route's template (``/balance/{uid}``) where one
matched, else the path; ``path`` has no query string; ``bytes`` and ``key``
are null when unknown. The error log's and the application's lines:

    {"time": "...", "level": "ERROR", "logger": "balance_api",
     "message": "request \\"5f0c...\\" failed unexpectedly", "request_id": "5f0c...",
     "exception": "Traceback (most recent call last):\\n..."}

``request_id`` only where the message names one, ``exception`` only for
exceptions. No line holds a header other than the User-Agent, nor a body:
never a token or an Idempotency-Key. In JSON, ``access_log_format`` is not used.
"""
import datetime
import json
import logging
import os
import re
import time

from gunicorn import glogging
from gunicorn.config import AccessLogFormat

from ..config import log_format_setting
from . import secret_paths
from .log_text import log_field, one_line, quoted_log_field

_REQUEST_ID = 'x-request-id'
# The API key's name, put there by the authentication (the "user" field).
KEY_NAME_ENVIRON = 'balance_api.key_name'
APPLICATION_LOGGER = 'balance_api'
# The matched route's template, put there by balance_api.web.middleware.RequestId.
ROUTE_ENVIRON = 'balance_api.route'
# The client behind a trusted proxy (balance_api.web.middleware.ClientAddress).
CLIENT_ENVIRON = 'balance_api.client'
LOG_FORMAT_ENVIRON = 'LOG_FORMAT'
# How the application's messages name their request: ``request "<id>" ...``
# (a quoted log field, balance_api.web.error_handlers and .worker).
_MESSAGE_REQUEST_ID = re.compile(r'^request "((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r'\\(.)')


def _without_secrets(environ):
    """``environ`` for gunicorn's own formatting: a path that carries a key
    (``balance_api.web.secret_paths``) replaced by its route's template."""
    target = environ.get('RAW_URI') or environ.get('PATH_INFO') or ''
    if secret_paths.loggable(target) == target:
        return environ
    template = secret_paths.loggable(target)
    return {**environ, 'RAW_URI': template, 'PATH_INFO': template, 'REQUEST_URI': template,
            'QUERY_STRING': ''}


def iso_time(seconds):
    """``seconds`` since the epoch as ISO 8601 UTC to the millisecond, with Z."""
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return stamp.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (stamp.microsecond // 1000)


def json_line(fields):
    # ASCII only: no raw control or line separator can reach the log.
    return json.dumps(fields, separators=(', ', ': '))


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, request_id, exception."""

    def format(self, record):
        message = record.getMessage()
        fields = {'time': iso_time(record.created), 'level': record.levelname,
                  'logger': record.name, 'message': message}
        request_id = getattr(record, 'request_id', None)
        if request_id is None:
            named = _MESSAGE_REQUEST_ID.match(message)
            if named:
                request_id = _UNESCAPE.sub(r'\1', named.group(1))
        if request_id is not None:
            fields['request_id'] = request_id
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields['exception'] = record.exc_text
        if record.stack_info:
            fields['stack'] = self.formatStack(record.stack_info)
        return json_line(fields)


class OneLineFormatter(logging.Formatter):
    """Another formatter's lines, each record, traceback included, on one line."""

    def __init__(self, formatter):
        super().__init__()
        self.formatter = formatter

    def format(self, record):
        return one_line(self.formatter.format(record))


class AccessLogger(glogging.Logger):
    _stamp_second = None
    _stamp = ''
    log_format = 'text'

    def setup(self, cfg):
        # Before anything is set up: a wrong value stops the server at start.
        self.log_format = log_format_setting(os.environ.get(LOG_FORMAT_ENVIRON))
        super().setup(cfg)
        if cfg.logconfig_dict or cfg.logconfig_json or cfg.logconfig:
            return
        for handler in self.error_log.handlers:
            if not getattr(handler, '_gunicorn', False):
                continue
            if self.log_format == 'json':
                if not isinstance(handler.formatter, JsonFormatter):
                    handler.setFormatter(JsonFormatter())
            elif not isinstance(handler.formatter, OneLineFormatter):
                handler.setFormatter(OneLineFormatter(handler.formatter or logging.Formatter()))
        application = logging.getLogger(APPLICATION_LOGGER)
        application.handlers = list(self.error_log.handlers)
        application.setLevel(self.loglevel)
        # Not also to the root logger, which a caller may have given a handler.
        application.propagate = False

    def access(self, resp, req, environ, request_time):
        if self.log_format == 'json':
            self._json_access(resp, environ, request_time)
            return
        if self.cfg.access_log_format != AccessLogFormat.default:
            super().access(resp, req, _without_secrets(environ), request_time)
            return
        if not self.access_log_enabled:
            return
        request_id = '-'
        for name, value in resp.headers:
            if name.lower() == _REQUEST_ID:
                request_id = value
                break
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, 'sent', None)
        line = '%s - %s %s "%s %s %s" %s %s %s %s %d.%06d %s' % (
            log_field(environ.get(CLIENT_ENVIRON) or environ.get('REMOTE_ADDR', '-')),
            log_field(environ.get(KEY_NAME_ENVIRON) or '-'), self.now(),
            log_field(environ['REQUEST_METHOD']),
            log_field(secret_paths.loggable(environ['RAW_URI'])),
            log_field(environ['SERVER_PROTOCOL']),
            log_field(str(status)), sent if sent is not None else '-',
            quoted_log_field(environ.get('HTTP_REFERER', '-')),
            quoted_log_field(environ.get('HTTP_USER_AGENT', '-')),
            request_time.seconds, request_time.microseconds, quoted_log_field(request_id))
        try:
            self.access_log.info(line)
        except Exception:
            self.exception('access log line could not be written')

    def _json_access(self, resp, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            status = resp.status
            if isinstance(status, str):
                status = status.split(None, 1)[0]
            try:
                status = int(status)
            except (TypeError, ValueError):
                status = str(status)
            request_id = None
            for name, value in resp.headers:
                if name.lower() == _REQUEST_ID:
                    request_id = value
                    break
            path = environ.get('RAW_URI') or environ.get('PATH_INFO') or ''
            path = secret_paths.loggable(path.split('?', 1)[0])
            line = json_line({
                'time': iso_time(time.time()),
                'request_id': request_id,
                'method': environ.get('REQUEST_METHOD'),
                'route': environ.get(ROUTE_ENVIRON) or path,
                'path': path,
                'status': status,
                'duration': round(request_time.total_seconds(), 6),
                'bytes': getattr(resp, 'sent', None),
                'key': environ.get(KEY_NAME_ENVIRON) or None,
                'client': environ.get(CLIENT_ENVIRON) or environ.get('REMOTE_ADDR'),
                'user_agent': environ.get('HTTP_USER_AGENT'),
            })
            self.access_log.info(line)
        except Exception:
            self.exception('access log line could not be written')

    def now(self):
        # strftime once a second, not once a request.
        second = int(time.time())
        if second != self._stamp_second:
            self._stamp = time.strftime('[%d/%b/%Y:%H:%M:%S %z]', time.localtime(second))
            self._stamp_second = second
        return self._stamp
