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
none was verified); never its token.

Every field is escaped as Apache escapes it (``balance_api.web.log_text``): a
header may carry C1 controls such as U+0085, which gunicorn's parser lets
through and which would split the line.

A deployment that sets its own ``access_log_format`` gets gunicorn's
formatting of it, unchanged.

The application's own log (logger ``balance_api``) goes where gunicorn's
error log goes, in its format (time, pid, level), one line per record:
tracebacks included, line breaks are escaped. A deployment that configures
logging itself (``logconfig_dict`` and the like) keeps its configuration.
"""
import logging
import time

from gunicorn import glogging
from gunicorn.config import AccessLogFormat

from .log_text import log_field, one_line, quoted_log_field

_REQUEST_ID = 'x-request-id'
# The API key's name, put there by the authentication (the "user" field).
KEY_NAME_ENVIRON = 'balance_api.key_name'
APPLICATION_LOGGER = 'balance_api'


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

    def setup(self, cfg):
        super().setup(cfg)
        if cfg.logconfig_dict or cfg.logconfig_json or cfg.logconfig:
            return
        for handler in self.error_log.handlers:
            if (getattr(handler, '_gunicorn', False)
                    and not isinstance(handler.formatter, OneLineFormatter)):
                handler.setFormatter(OneLineFormatter(handler.formatter or logging.Formatter()))
        application = logging.getLogger(APPLICATION_LOGGER)
        application.handlers = list(self.error_log.handlers)
        application.setLevel(self.loglevel)
        # Not also to the root logger, which a caller may have given a handler.
        application.propagate = False

    def access(self, resp, req, environ, request_time):
        if self.cfg.access_log_format != AccessLogFormat.default:
            super().access(resp, req, environ, request_time)
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
            log_field(environ.get('REMOTE_ADDR', '-')),
            log_field(environ.get(KEY_NAME_ENVIRON) or '-'), self.now(),
            log_field(environ['REQUEST_METHOD']), log_field(environ['RAW_URI']),
            log_field(environ['SERVER_PROTOCOL']),
            log_field(str(status)), sent if sent is not None else '-',
            quoted_log_field(environ.get('HTTP_REFERER', '-')),
            quoted_log_field(environ.get('HTTP_USER_AGENT', '-')),
            request_time.seconds, request_time.microseconds, quoted_log_field(request_id))
        try:
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
