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
