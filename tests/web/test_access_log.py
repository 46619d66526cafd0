"""The access log: gunicorn's combined line plus request time and request id;
the application's log in gunicorn's error-log format, one line per record."""
import datetime
import logging
import re

import pytest
from gunicorn.config import Config

from balance_api.web.access_log import AccessLogger


class _Request:
    headers = [('USER-AGENT', 'agent')]


class _Response:
    def __init__(self, status, headers, sent):
        self.status, self.headers, self.sent = status, headers, sent


ENVIRON = {'REMOTE_ADDR': '10.1.2.3', 'REQUEST_METHOD': 'PUT', 'RAW_URI': '/transfer?x=%41',
           'SERVER_PROTOCOL': 'HTTP/1.1', 'HTTP_USER_AGENT': 'agent "quoted" \\ slash',
           'PATH_INFO': '/transfer', 'QUERY_STRING': 'x=%41'}


def _logger(**settings):
    config = Config()
    config.set('accesslog', '-')
    for name, value in settings.items():
        config.set(name, value)
    return AccessLogger(config)


def _line(capsys, logger, response):
    logger.access(response, _Request(), dict(ENVIRON), datetime.timedelta(seconds=1, microseconds=2345))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    return lines[0]


@pytest.fixture(autouse=True)
def application_log():
    """The application's logger, given back as it was: setting up gunicorn's
    logger points it at gunicorn's error log."""
    logger = logging.getLogger('balance_api')
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    yield logger
    logger.handlers, logger.propagate = handlers, propagate
    logger.setLevel(level)


def test_line_is_combined_format_with_time_and_request_id(capsys):
    response = _Response('200 OK', [('Content-Type', 'application/json'),
                                    ('X-Request-ID', 'abc-1')], 57)
    line = _line(capsys, _logger(), response)
    prefix, stamp_and_rest = line.split(' [', 1)
    assert prefix == '10.1.2.3 - -'
    stamp, rest = stamp_and_rest.split('] ', 1)
    datetime.datetime.strptime(stamp, '%d/%b/%Y:%H:%M:%S %z')
    assert rest == ('"PUT /transfer?x=%41 HTTP/1.1" 200 57 "-" '
                    '"agent \\"quoted\\" \\\\ slash" 1.002345 "abc-1"')


def test_missing_values_are_dashes(capsys):
    line = _line(capsys, _logger(), _Response('503 Service Unavailable', [], None))
    assert line.endswith('" 503 - "-" "agent \\"quoted\\" \\\\ slash" 1.002345 "-"')


def test_a_format_of_its_own_is_formatted_by_gunicorn(capsys):
    logger = _logger(access_log_format='%(m)s %(U)s %(s)s %({x-request-id}o)s')
    response = _Response('201 Created', [('X-Request-ID', 'r-9')], 3)
    assert _line(capsys, logger, response) == 'PUT /transfer 201 r-9'


def test_no_access_log_writes_nothing(capsys):
    config = Config()
    logger = AccessLogger(config)
    logger.access(_Response('200 OK', [], 1), _Request(), dict(ENVIRON), datetime.timedelta(0))
    assert capsys.readouterr().out == ''


def _fields_after_the_time(line):
    return line.split('] ', 1)[1]


def test_control_characters_are_escaped_in_every_field(capsys):
    environ = {**ENVIRON, 'HTTP_USER_AGENT': 'evil\x85forged\x9b[2J\x1b\x7f\t\n',
               'HTTP_REFERER': 'caf\u00e9 \u2028 \u65e5', 'RAW_URI': '/t?\x00',
               'REQUEST_METHOD': 'P\x85T', 'REMOTE_ADDR': '10.0.0.1\n'}
    response = _Response('200 OK', [('X-Request-ID', 'id\x9b')], 1)
    logger = _logger()
    logger.access(response, _Request(), environ, datetime.timedelta(seconds=1, microseconds=2345))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.isascii() and line.isprintable()
    assert line.startswith('10.0.0.1\\n - - [')
    assert _fields_after_the_time(line) == (
        '"P\\x85T /t?\\x00 HTTP/1.1" 200 1 "caf\\xe9 \\xe2\\x80\\xa8 \\xe6\\x97\\xa5" '
        '"evil\\x85forged\\x9b[2J\\x1b\\x7f\\t\\n" 1.002345 "id\\x9b"')


def test_request_id_is_quoted(capsys):
    response = _Response('200 OK', [('X-Request-ID', 'my id "one" \\ x')], 2)
    line = _line(capsys, _logger(), response)
    assert line.endswith(' 1.002345 "my id \\"one\\" \\\\ x"')


def test_application_records_are_one_error_log_line_each(capsys, application_log):
    config = Config()
    config.set('errorlog', '-')
    AccessLogger(config)
    try:
        raise RuntimeError('first line\nsecond line')
    except RuntimeError:
        application_log.exception('request "%s" failed unexpectedly', 'r-1')
    logging.getLogger('balance_api.web.streaming').warning('tab\there\x85')
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    stamp = r'^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] '
    assert re.match(stamp + r'\[ERROR\] request "r-1" failed unexpectedly\\nTraceback ', lines[0])
    assert lines[0].endswith('RuntimeError: first line\\nsecond line')
    assert re.match(stamp + r'\[WARNING\] tab\\there\\x85$', lines[1])


# LOG_FORMAT=json: every line one JSON object.

def _json_logger(monkeypatch, **settings):
    monkeypatch.setenv('LOG_FORMAT', 'json')
    settings.setdefault('errorlog', '-')
    return _logger(**settings)


ISO_UTC = r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$'


def test_json_access_line_has_every_field(capsys, monkeypatch):
    import json
    environ = {**ENVIRON, 'balance_api.route': '/transfer', 'balance_api.key_name': 'shop-1'}
    response = _Response('200 OK', [('X-Request-ID', 'abc-1')], 57)
    _json_logger(monkeypatch).access(response, _Request(), environ,
                                     datetime.timedelta(seconds=1, microseconds=2345))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert re.match(ISO_UTC, line.pop('time'))
    assert line == {'request_id': 'abc-1', 'method': 'PUT', 'route': '/transfer',
                    'path': '/transfer', 'status': 200, 'duration': 1.002345, 'bytes': 57,
                    'key': 'shop-1', 'client': '10.1.2.3',
                    'user_agent': 'agent "quoted" \\ slash'}


def test_json_access_line_without_a_route_names_the_path_and_nulls(capsys, monkeypatch):
    import json
    logger = _json_logger(monkeypatch, access_log_format='%(m)s %(U)s')
    environ = {**ENVIRON, 'RAW_URI': '/nowhere/3?token=x'}
    del environ['HTTP_USER_AGENT']
    logger.access(_Response('404 Not Found', [], None), _Request(), environ,
                  datetime.timedelta(microseconds=5))
    line = json.loads(capsys.readouterr().out)
    assert line['route'] == line['path'] == '/nowhere/3'
    assert line['status'] == 404 and line['duration'] == 0.000005
    assert line['request_id'] is None and line['bytes'] is None and line['key'] is None
    assert line['user_agent'] is None


def test_json_lines_escape_controls_and_stay_ascii(capsys, monkeypatch):
    import json
    environ = {**ENVIRON, 'HTTP_USER_AGENT': 'evil\x85forged\u2028\n{"status": 1}\x1b',
               'RAW_URI': '/t\x00\n'}
    _json_logger(monkeypatch).access(_Response('200 OK', [('X-Request-ID', 'id\n')], 1),
                                     _Request(), environ, datetime.timedelta(0))
    out = capsys.readouterr().out
    assert out.count('\n') == 1
    line = out.rstrip('\n')
    assert line.isascii() and line.isprintable()
    fields = json.loads(line)
    assert fields['user_agent'] == 'evil\x85forged\u2028\n{"status": 1}\x1b'
    assert fields['path'] == '/t\x00\n' and fields['request_id'] == 'id\n'


def test_json_error_lines(capsys, monkeypatch, application_log):
    import json
    _json_logger(monkeypatch)
    try:
        raise RuntimeError('first line\nsecond line')
    except RuntimeError:
        application_log.exception('request %s failed unexpectedly', '"r-\\"1\\""')
    logging.getLogger('balance_api.web.streaming').warning('tab\there\x85')
    logging.getLogger('gunicorn.error').info('Booting worker with pid: %d', 7)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    for line in lines:
        assert line.isascii() and line.isprintable()
    first, second, third = (json.loads(line) for line in lines)
    for record in (first, second, third):
        assert re.match(ISO_UTC, record.pop('time'))
    exception = first.pop('exception')
    assert exception.startswith('Traceback (most recent call last):\n')
    assert exception.endswith('RuntimeError: first line\nsecond line')
    assert first == {'level': 'ERROR', 'logger': 'balance_api', 'request_id': 'r-"1"',
                     'message': 'request "r-\\"1\\"" failed unexpectedly'}
    assert second == {'level': 'WARNING', 'logger': 'balance_api.web.streaming',
                      'message': 'tab\there\x85'}
    assert third == {'level': 'INFO', 'logger': 'gunicorn.error',
                     'message': 'Booting worker with pid: 7'}


def test_log_format_setting(monkeypatch):
    from balance_api.config import Settings
    assert Settings.from_env({}).log_format == 'text'
    assert Settings.from_env({'LOG_FORMAT': ' JSON '}).log_format == 'json'
    with pytest.raises(ValueError, match='LOG_FORMAT is "text" or "json"'):
        Settings.from_env({'LOG_FORMAT': 'xml'})
    monkeypatch.setenv('LOG_FORMAT', 'xml')
    with pytest.raises(ValueError):
        _logger()


def test_an_unknown_log_format_is_exit_2(monkeypatch, capsys):
    from balance_api.__main__ import main
    monkeypatch.setenv('LOG_FORMAT', 'yaml')
    assert main(['list-keys']) == 2
    assert 'LOG_FORMAT' in capsys.readouterr().err


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
def test_json_lines_of_a_real_request_hold_no_secret(capsys, monkeypatch, app, admin_token):
    """A real request through the application: the access line names the key
    and the route, and neither line holds the token, the Idempotency-Key or the body."""
    import json

    import falcon.testing
    logger = _json_logger(monkeypatch)
    secrets = {'token': admin_token, 'key': 'idem-key-7f3c2a', 'body': 'trans_desc=secret-memo-9q'}
    environ = falcon.testing.create_environ(
        path='/balance/41', method='PUT', body='operation=add&balance=2.50&' + secrets['body'],
        headers={'Authorization': 'Bearer ' + admin_token, 'Idempotency-Key': secrets['key'],
                 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': 'probe/1'})
    environ['RAW_URI'] = '/balance/41'
    answered = {}

    def start_response(status, headers, exc_info=None):
        answered.update(status=status, headers=headers)

    body = b''.join(app(environ, start_response))
    logging.getLogger('balance_api').error('request "%s" failed: %s', 'r-2', 'for the test')
    logger.access(_Response(answered['status'], answered['headers'], len(body)), _Request(),
                  environ, datetime.timedelta(milliseconds=3))
    captured = capsys.readouterr()
    access = json.loads(captured.out)
    assert access['key'] == ADMIN_KEY_NAME_IN_TESTS
    assert access['route'] == '/balance/{user_id}' and access['path'] == '/balance/41'
    assert access['method'] == 'PUT' and access['user_agent'] == 'probe/1'
    assert access['status'] == int(answered['status'].split()[0])
    for line in captured.err.splitlines():
        json.loads(line)
    for name, secret in secrets.items():
        assert secret not in captured.out + captured.err, name
    assert 'secret-memo' not in captured.out + captured.err


ADMIN_KEY_NAME_IN_TESTS = 'test-admin'
