"""The access log: gunicorn's combined line plus request time and request id."""
import datetime

from gunicorn.config import Config

from balance_api.access_log import AccessLogger


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


def test_line_is_combined_format_with_time_and_request_id(capsys):
    response = _Response('200 OK', [('Content-Type', 'application/json'),
                                    ('X-Request-ID', 'abc-1')], 57)
    line = _line(capsys, _logger(), response)
    prefix, stamp_and_rest = line.split(' [', 1)
    assert prefix == '10.1.2.3 - -'
    stamp, rest = stamp_and_rest.split('] ', 1)
    datetime.datetime.strptime(stamp, '%d/%b/%Y:%H:%M:%S %z')
    assert rest == ('"PUT /transfer?x=%41 HTTP/1.1" 200 57 "-" '
                    '"agent \\"quoted\\" \\\\ slash" 1.002345 abc-1')


def test_missing_values_are_dashes(capsys):
    line = _line(capsys, _logger(), _Response('503 Service Unavailable', [], None))
    assert line.endswith('" 503 - "-" "agent \\"quoted\\" \\\\ slash" 1.002345 -')


def test_a_format_of_its_own_is_formatted_by_gunicorn(capsys):
    logger = _logger(access_log_format='%(m)s %(U)s %(s)s %({x-request-id}o)s')
    response = _Response('201 Created', [('X-Request-ID', 'r-9')], 3)
    assert _line(capsys, logger, response) == 'PUT /transfer 201 r-9'


def test_no_access_log_writes_nothing(capsys):
    config = Config()
    logger = AccessLogger(config)
    logger.access(_Response('200 OK', [], 1), _Request(), dict(ENVIRON), datetime.timedelta(0))
    assert capsys.readouterr().out == ''
