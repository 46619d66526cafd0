"""The real gunicorn server over raw sockets: requests no HTTP library would send.

Whatever gunicorn's parser refuses is answered with the API's JSON error, an
X-Request-ID and Connection: close, and logged as one error-log line under
that id; what it lets through reaches the logs escaped.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from gunicorn.config import Config
from gunicorn.workers.sync import SyncWorker

from balance_api import __version__
from balance_api.web import middleware, server as service
from balance_api.storage.db import open_database
from balance_api.web.middleware import keep_connections
from balance_api.web.streaming import report_progress_to
from conftest import PG_URL, _with_database
from gunicorn_server import ROOT, Server, _free_port
from helpers import ERRORS

# What GET /health answers.
HEALTH = {'status': 'ok', 'version': __version__}
# An error-log line: gunicorn's format, time, pid and level first.
ERROR_LINE = re.compile(r'^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[(\w+)\] ')


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """One server for the whole module: what is tested here happens before any database."""
    running = Server('sqlite:///%s' % (tmp_path_factory.mktemp('gunicorn') / 'balance.db'),
                     workers=2)
    yield running
    running.stop()


# A token of the right shape that no key has: the look-up is the first use of
# the database (for a server that has no key of its own).
UNKNOWN_TOKEN = b'A' * 43


def _with_key(server, data):
    """``data`` with the server's key after its Host line (if it has one), so
    what reaches the application is judged on its own merits."""
    host = b'\r\nHost: localhost\r\n'
    if host not in data or b'\r\nAuthorization:' in data:
        return data
    token = server.headers['Authorization'].encode() if getattr(server, 'headers', None) \
        else b'Bearer ' + UNKNOWN_TOKEN
    return data.replace(host, host + b'Authorization: ' + token + b'\r\n', 1)


def exchange(server, data):
    """Send ``data`` as it is (with the server's key), and read the answer
    until the server closes."""
    data = _with_key(server, data)
    with socket.create_connection(('127.0.0.1', server.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk


def parse(answer):
    head, _, body = answer.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def log_since(server, start, wanted, timeout=5):
    """The log written after offset ``start``, once ``wanted(text)`` holds (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.log_text()[start:]
        if wanted(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def error_lines(text):
    return [line for line in text.splitlines() if ERROR_LINE.match(line)]


def assert_refused(server, data, code):
    start = len(server.log_text())
    status, headers, body = parse(exchange(server, data))
    assert (status, json.loads(body)) == (ERRORS[code][0], {'code': code,
                                                            'message': ERRORS[code][1]})
    assert headers['content-type'] == 'application/json'
    assert int(headers['content-length']) == len(body)
    assert headers['connection'] == 'close'
    request_id = headers['x-request-id']
    assert request_id
    # Whole lines only: the server may be half way through writing one.
    text = log_since(server, start, lambda text: any(
        request_id in line for line in error_lines(text.rpartition('\n')[0])))
    # Other lines may come meanwhile (a worker booting): those naming this request count.
    errors_logged = [line for line in error_lines(text.rpartition('\n')[0])
                     if request_id in line]
    assert len(errors_logged) == 1, text
    assert ERROR_LINE.match(errors_logged[0]).group(1) == 'WARNING'
    assert '"%s"' % request_id in errors_logged[0]
    assert ' %d ' % code in errors_logged[0]
    return headers


HEAD = b'GET /health HTTP/1.1\r\nHost: localhost\r\n'
PUT = (b'PUT /balance/1 HTTP/1.1\r\nHost: localhost\r\n'
       b'Content-Type: application/x-www-form-urlencoded\r\n')

REFUSED = {
    'CR in a header value': (HEAD + b'X-Note: a\rb\r\n\r\n', 533),
    'LF in a header value': (HEAD + b'X-Note: a\nb\r\n\r\n', 533),
    'control character in a header value': (HEAD + b'X-Note: a\x01b\r\n\r\n', 533),
    'DEL in a header value': (HEAD + b'X-Note: a\x7fb\r\n\r\n', 533),
    'duplicate Content-Length': (PUT + b'Content-Length: 5\r\nContent-Length: 5\r\n\r\n', 533),
    'signed Content-Length': (PUT + b'Content-Length: +5\r\n\r\n', 533),
    'Content-Length with chunked': (
        PUT + b'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 533),
    'unknown transfer coding': (PUT + b'Transfer-Encoding: foo\r\n\r\n', 538),
    'a 64 KB header': (HEAD + b'X-Big: ' + b'a' * 65536 + b'\r\n\r\n', 535),
    '200 headers': (HEAD + b''.join(b'X-H%d: v\r\n' % i for i in range(200)) + b'\r\n', 535),
    'request line over 4,094 bytes': (
        b'GET /' + b'a' * 4095 + b' HTTP/1.1\r\nHost: localhost\r\n\r\n', 534),
    'lowercase method': (b'get /health HTTP/1.1\r\nHost: localhost\r\n\r\n', 537),
    'Expect: foo': (HEAD + b'Expect: foo\r\n\r\n', 536),
    'method that is no token': (b'G(T /health HTTP/1.1\r\nHost: localhost\r\n\r\n', 533),
    'two Host headers': (HEAD + b'Host: other\r\n\r\n', 533),
}


@pytest.mark.parametrize('case', REFUSED)
def test_what_gunicorn_refuses_is_a_json_error(server, case):
    data, code = REFUSED[case]
    assert_refused(server, data, code)


def test_refusal_echoes_the_client_request_id_when_it_was_read(server):
    headers = assert_refused(
        server, PUT + b'X-Request-ID: client-id-1\r\nContent-Length: 5\r\nContent-Length: 5'
                      b'\r\n\r\n', 533)
    assert headers['x-request-id'] == 'client-id-1'


def test_request_line_of_4094_bytes_is_read(server):
    target = b'/balance/1?x=' + b'a' * (4094 - len(b'GET /balance/1?x= HTTP/1.1'))
    line = b'GET ' + target + b' HTTP/1.1'
    assert len(line) == 4094
    status, _, body = parse(exchange(server, line + b'\r\nHost: localhost\r\n\r\n'))
    assert (status, json.loads(body)['code']) == (404, 509)


def test_the_default_worker_keeps_its_database_connection():
    """The JSON-refusing worker serves one request at a time, as gunicorn's sync worker."""
    config = Config()
    config.set('worker_class', service.DEFAULTS['worker_class'])
    worker = config.worker_class(0, os.getpid(), [], None, 30, config, None)
    assert type(worker).handle_error is not SyncWorker.handle_error
    try:
        service.worker_started(worker)
        assert middleware._keep_connections
    finally:
        keep_connections(False)
        report_progress_to(None)
        worker.tmp.close()


# -- what the application refuses from the real target ---------------------------

def get(server, target, extra=b''):
    return parse(exchange(server, b'GET ' + target + b' HTTP/1.1\r\nHost: localhost\r\n'
                          + extra + b'\r\n'))


def test_encoded_slash_is_529(server):
    for target in (b'/balance%2F1', b'/history%2fuid=1', b'/api%2Fdocs'):
        status, _, body = get(server, target)
        assert (status, json.loads(body)['code']) == (404, 529), target


def test_history_path_form_is_decoded_once(server):
    for query, code in [(b'uid=%2531', 507), (b'uid%3D1', 515)]:
        path_form = get(server, b'/history/' + query)
        query_form = get(server, b'/history?' + query)
        assert (path_form[0], json.loads(path_form[2])['code']) == (422, code)
        assert (query_form[0], json.loads(query_form[2])) == (path_form[0],
                                                                json.loads(path_form[2]))
    status, _, body = get(server, b'/history/uid=1')
    assert (status, json.loads(body)) == (200, [])


def test_http11_without_host_is_540_and_http10_is_served(server):
    status, headers, body = parse(exchange(server, b'GET /health HTTP/1.1\r\n\r\n'))
    assert (status, json.loads(body)['code']) == (400, 540)
    assert headers['x-request-id']
    status, _, body = parse(exchange(server, b'GET /health HTTP/1.0\r\n\r\n'))
    assert (status, json.loads(body)) == (200, HEALTH)


def test_repeated_idempotency_key_header_is_519(server):
    body = b'uid=77'
    status, _, answer = parse(exchange(
        server, b'POST /user HTTP/1.1\r\nHost: localhost\r\n'
                b'Content-Type: application/x-www-form-urlencoded\r\n'
                b'Idempotency-Key: k-1\r\nIdempotency-Key: k-2\r\n'
                b'Content-Length: %d\r\n\r\n' % len(body) + body))
    assert (status, json.loads(answer)) == (422, {'code': 519, 'message': ERRORS[519][1]})
    status, _, answer = get(server, b'/balance/77')
    assert (status, json.loads(answer)['code']) == (404, 509)


def test_head_is_answered_without_a_body(server):
    answer = exchange(server, b'HEAD /health HTTP/1.1\r\nHost: localhost\r\n\r\n')
    status, headers, body = parse(answer)
    assert (status, body) == (200, b'')
    assert headers['content-type'] == 'application/json'
    assert int(headers['content-length']) == len(json.dumps(HEALTH).encode())


# -- what reaches the logs ---------------------------------------------------------

def test_control_characters_from_the_client_are_escaped_in_the_access_log(server):
    request_id = 'my id %s' % uuid.uuid4().hex
    start = len(server.log_text())
    status, headers, _ = get(server, b'/health',
                             b'User-Agent: evil\x85forged \x9b[31m\r\n'
                             b'X-Request-ID: ' + request_id.encode() + b'\r\n')
    assert status == 200 and headers['x-request-id'] == request_id
    quoted = '"%s"' % request_id
    text = log_since(server, start, lambda text: quoted in text)
    lines = [line for line in text.splitlines() if quoted in line]
    assert len(lines) == 1, text
    assert re.search(r'"GET /health HTTP/1\.1" 200 %d "-" "evil' % len(json.dumps(HEALTH))
                     + r'\\x85forged \\x9b\[31m" '
                     r'\d+\.\d{6} %s$' % re.escape(quoted), lines[0]), lines[0]
    assert lines[0].isascii() and lines[0].isprintable()


# -- application errors, under both documented ways to start -----------------------

class GunicornCommand(Server):
    """The service started as ``gunicorn -c gunicorn.conf.py wsgi:application``."""

    # Started on a database nobody migrated: /ready says so (541), /health serves.
    ready_path = '/health'

    def __init__(self, database_url, workers=2):
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        env = {**os.environ, 'DATABASE_URL': database_url,
               'BIND': '127.0.0.1:%d' % self.port, 'WEB_CONCURRENCY': str(workers)}
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'gunicorn', '-c', 'gunicorn.conf.py', 'wsgi:application'],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        self.workers = workers
        self._wait_ready()


@pytest.fixture
def own_postgres_url(request):
    """A PostgreSQL database of this test's own, without a schema."""
    request.getfixturevalue('postgres_url')  # skips (or fails in CI) without a server
    admin = open_database(PG_URL)
    admin.connect()
    admin.connection().autocommit = True
    name = 'balance_api_broken_%s' % uuid.uuid4().hex[:12]
    admin.execute_sql('CREATE DATABASE %s' % name)
    yield _with_database(PG_URL, name)
    admin.execute_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    admin.close_all()


@pytest.mark.parametrize('start', ['serve', 'gunicorn'])
def test_application_error_is_one_line_with_time_level_and_request_id(own_postgres_url, start):
    if start == 'serve':
        # serve migrates first; the table is gone afterwards.
        running = Server(own_postgres_url, workers=2)
        db = open_database(own_postgres_url)
        with db.connection_context():
            db.execute_sql('DROP TABLE account CASCADE')
        db.close_all()
    else:
        # No migration: the table was never there.
        running = GunicornCommand(own_postgres_url)
    try:
        status, headers, body = parse(exchange(
            running, b'GET /balance/1 HTTP/1.1\r\nHost: localhost\r\n'
                     b'X-Request-ID: broken "one"\r\n\r\n'))
        assert (status, json.loads(body)) == (500, {'code': 532, 'message': ERRORS[532][1]})
        assert headers['x-request-id'] == 'broken "one"'
        named = 'request "broken \\"one\\"" failed unexpectedly'
        text = log_since(running, 0, lambda text: named in text)
    finally:
        running.stop()
    lines = [line for line in text.splitlines() if named in line]
    assert len(lines) == 1, text
    assert ERROR_LINE.match(lines[0]) and ERROR_LINE.match(lines[0]).group(1) == 'ERROR', text
    assert '\\nTraceback (most recent call last):\\n' in lines[0]
    # The first table the request needed: the key's (no schema at all), or the balance's.
    assert ('account' if start == 'serve' else 'api_key') in lines[0]
    assert not [line for line in text.splitlines() if line.startswith(('Traceback', '  File'))]


def _answered(sock, timeout):
    """Read one whole answer (the server closes after each); the bytes read."""
    sock.settimeout(timeout)
    data = b''
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_a_worker_is_free_again_before_its_last_client_closes(tmp_path):
    """A sync worker serves the next connection as soon as its answer is sent,
    not when the previous client gets round to closing its end.

    The client here reads its answer and keeps the connection open, as a
    slow or pooled client may; another client's request must not wait
    behind it on the one worker.
    """
    single = Server('sqlite:///%s' % (tmp_path / 'balance.db'), workers=1)
    try:
        request = _with_key(single, b'GET /balance/1 HTTP/1.1\r\nHost: localhost\r\n\r\n')
        lingering = socket.create_connection(('127.0.0.1', single.port))
        try:
            lingering.sendall(request)
            first = _answered(lingering, timeout=10)
            assert first.startswith(b'HTTP/1.1 '), first[:100]
            started = time.monotonic()
            with socket.create_connection(('127.0.0.1', single.port)) as second:
                second.sendall(_with_key(single, b'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n'))
                answer = _answered(second, timeout=10)
            waited = time.monotonic() - started
        finally:
            lingering.close()
    finally:
        single.stop()
    assert answer.startswith(b'HTTP/1.1 200 '), answer[:200]
    # gunicorn on its own lingers up to 2 s for the first client to close.
    assert waited < 1.0, 'the second request waited %.2f s behind an idle connection' % waited


def test_an_answer_sent_before_its_body_was_read_arrives_whole(server):
    """A body refused unread (too large) keeps gunicorn's lingering close, so
    the bytes still arriving cannot turn the close into a reset that would
    destroy the answer."""
    body = b'x' * (1 << 20)
    head = _with_key(server, b'PUT /balance/1 HTTP/1.1\r\nHost: localhost\r\n'
                             b'Content-Type: application/x-www-form-urlencoded\r\n'
                             b'Content-Length: %d\r\n\r\n' % len(body))
    with socket.create_connection(('127.0.0.1', server.port)) as sock:
        sock.sendall(head)
        try:
            sock.sendall(body)
        except OSError:
            pass  # the server may have stopped reading; the answer is what counts
        answer = _answered(sock, timeout=10)
    assert answer.startswith(b'HTTP/1.1 413 '), answer[:200]
    assert json.loads(answer.split(b'\r\n\r\n', 1)[1])['code'] == 520
