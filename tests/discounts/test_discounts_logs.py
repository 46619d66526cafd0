"""The existing clients' claim carries a key in its path: no log line ever holds it.
The access log (text, JSON, a format of one's own), the refusal log, gunicorn's
parse errors and the nginx configuration write the route's template instead."""
import datetime
import json
import logging
import socket
import subprocess

import falcon.testing
import pytest
from gunicorn.config import Config
from gunicorn.http import errors as parse_errors

from balance_api.config import Settings
from balance_api.discounts.routes import LEGACY_CLAIM
from balance_api.web import proxy, secret_paths
from balance_api.web.access_log import AccessLogger
from balance_api.web.worker import ApiSyncWorker
from conftest import nginx_binary

SECRET = 'Zq3vD9xW2mK7pL0aB4nR6tY8uE1iO5sF-_gHjKlMnPQ'
SPELLINGS = ['/discounts/api/v1.0/get_code/7/%s/3' % SECRET,
             '/discounts/api/v1.0/get_code/7/%s/3?x=1' % SECRET,
             '/DISCOUNTS/api/v1%%2E0/get%%5fcode/7/%s/3' % SECRET,
             '//discounts//api/v1.0/get_code/7/%s' % SECRET,
             'http://example.com/discounts/api/v1.0/get_code/7/%s/3' % SECRET]


@pytest.fixture(autouse=True)
def registered():
    secret_paths.register(LEGACY_CLAIM)


@pytest.fixture(autouse=True)
def application_log():
    logger = logging.getLogger('balance_api')
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    yield logger
    logger.handlers, logger.propagate = handlers, propagate
    logger.setLevel(level)


class _Request:
    headers = [('USER-AGENT', 'agent')]


class _Response:
    status, headers, sent = '200 OK', [('X-Request-ID', 'r-1')], 10


def _environ(target):
    return {'REMOTE_ADDR': '10.0.0.1', 'REQUEST_METHOD': 'GET', 'RAW_URI': target,
            'PATH_INFO': target.split('?')[0], 'QUERY_STRING': 'x=1',
            'SERVER_PROTOCOL': 'HTTP/1.1', 'HTTP_USER_AGENT': 'agent'}


def _logger(monkeypatch, log_format='text', **settings):
    monkeypatch.setenv('LOG_FORMAT', log_format)
    config = Config()
    config.set('accesslog', '-')
    for name, value in settings.items():
        config.set(name, value)
    return AccessLogger(config)


@pytest.mark.parametrize('target', SPELLINGS)
def test_every_spelling_is_logged_as_the_template(capsys, monkeypatch, target):
    for logger in (_logger(monkeypatch), _logger(monkeypatch, 'json'),
                   _logger(monkeypatch, access_log_format='%(r)s %(U)s %(q)s')):
        logger.access(_Response(), _Request(), _environ(target), datetime.timedelta(0))
    out = capsys.readouterr().out
    assert SECRET not in out
    text, as_json, own = out.splitlines()
    assert '"GET %s HTTP/1.1"' % LEGACY_CLAIM in text
    fields = json.loads(as_json)
    assert fields['path'] == fields['route'] == LEGACY_CLAIM
    assert own == 'GET %s HTTP/1.1 %s ' % (LEGACY_CLAIM, LEGACY_CLAIM)


def test_other_paths_are_logged_as_they_are():
    for path in ('/discounts/api/v1.0/generate', '/discounts/1/code', '/balance/7'):
        assert secret_paths.loggable(path) == path
    assert secret_paths.redact('no path here') == 'no path here'


def test_a_request_line_gunicorn_refuses_is_redacted():
    written = []

    class Log:
        def warning(self, message, *args):
            written.append(message % args)
        exception = debug = warning

        def access(self, *args):
            pass

    worker = ApiSyncWorker.__new__(ApiSyncWorker)
    worker.log, worker.wsgi = Log(), None
    error = parse_errors.InvalidRequestLine(SPELLINGS[0] + '#fragment')
    ours, theirs = socket.socketpair()
    with ours, theirs:
        worker.handle_error(None, ours, ('10.0.0.1', 5), error)
        assert theirs.recv(4096).startswith(b'HTTP/1.1 400')
    assert len(written) == 1 and SECRET not in written[0]
    assert written[0].endswith("Invalid HTTP request line: '%s'" % LEGACY_CLAIM)


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
def test_a_refused_claim_logs_the_template(app, caplog):
    with caplog.at_level(logging.WARNING, logger='balance_api.auth'):
        result = falcon.testing.TestClient(app).simulate_get(SPELLINGS[0].split('?')[0])
    assert result.json['code'] == '703'
    assert 'refused GET "%s"' % LEGACY_CLAIM in caplog.text
    assert SECRET not in caplog.text


def test_the_proxy_configuration_never_logs_the_path():
    text = proxy.render(Settings(), secret_routes=(LEGACY_CLAIM,))
    assert '"$balance_api_logged_request"' in text and '"$request"' not in text
    pattern = secret_paths.pattern_source(LEGACY_CLAIM)
    assert '"~*%s" "$request_method %s $server_protocol";' % (pattern, LEGACY_CLAIM) in text
    location = text[text.index('location ~* "^%s"' % pattern):]
    assert location.split('}', 1)[0].count('error_log /dev/null emerg;') == 1
    # Without secret routes the configuration logs every request line as before.
    assert 'location ~*' not in proxy.render(Settings())


def test_the_proxy_configuration_is_valid_nginx(tmp_path):
    nginx = nginx_binary()
    conf = tmp_path / 'nginx.conf'
    conf.write_text(proxy.render(Settings(), prefix=str(tmp_path),
                                 secret_routes=(LEGACY_CLAIM,)))
    checked = subprocess.run([nginx, '-t', '-p', str(tmp_path), '-c', str(conf), '-e',
                              str(tmp_path / 'error.log')], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
