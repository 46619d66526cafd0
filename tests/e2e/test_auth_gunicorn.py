"""API keys end to end: the real gunicorn server with several workers, over HTTP."""
import concurrent.futures
import hashlib
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

from balance_api.auth.keys import RECHECK_SECONDS
from balance_api.storage.db import is_postgres, open_database
from conftest import PG_URL, ROOT, _with_database
from gunicorn_server import Server, bearer, create_key_in

READER = 'Balance:Api:Balance:Get'
# Enough clients at once that every one of the server's 3 sync workers gets some.
PARALLEL = 6
# gunicorn's error log: [time] [pid] [LEVEL] message
ERROR_LOG_LINE = re.compile(r'^\[[^\]]+\] \[(\d+)\] \[(\w+)\] (.*)$', re.M)


def new_key(database_url, name, permits):
    db = open_database(database_url)
    try:
        return create_key_in(db, name, permits)
    finally:
        if is_postgres(db):
            db.close_all()


def run_command(database_url, *arguments):
    return subprocess.run([sys.executable, '-m', 'balance_api', *arguments], cwd=ROOT,
                          env={'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'},
                          capture_output=True, text=True, timeout=60)


def revoke(database_url, name):
    result = run_command(database_url, 'revoke-key', name)
    assert result.returncode == 0, result.stderr


def stored_keys(database_url):
    db = open_database(database_url)
    try:
        with db.connection_context():
            return db.execute_sql(
                'SELECT name, permits, token_hash FROM api_key ORDER BY id').fetchall()
    finally:
        if is_postgres(db):
            db.close_all()


def get_all(url, count, headers=None):
    """``count`` GETs of ``url``, PARALLEL at a time, each on a connection of its own."""
    def one(_):
        return requests.get(url, headers=headers, timeout=10)
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(count)))


def all_workers(server, count, timeout=10):
    """The worker pids once ``count`` are running: ready means one of them answers."""
    deadline = time.monotonic() + timeout
    while len(server.worker_pids()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = set(server.worker_pids())
    assert len(workers) == count, workers
    return workers


def pids_logging(log_text, pattern):
    """The pids of the workers that logged a line whose message matches ``pattern``."""
    return {int(pid) for pid, _, message in ERROR_LOG_LINE.findall(log_text)
            if re.search(pattern, message)}


def wait_for_log(server, done, timeout=5):
    """The log once ``done(text)`` holds (the access log is written after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.log_text()
        if done(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


# -- (a) revocation reaches every worker ----------------------------------------------

def test_a_revocation_takes_effect_on_every_worker_within_a_second(server, database_url):
    server.session().post(server.url + '/user', data={'uid': 1})
    token = new_key(database_url, 'shop-till', [READER])
    workers = all_workers(server, 3)
    # A request the key's permit does not cover is still verified (and the key
    # cached) first, and its refusal is logged with the worker's pid: that is
    # how the test knows which workers hold the key.
    cached = r'refused GET "/balance" from 127\.0\.0\.1: 706 .*\(key shop-till\)$'
    for _ in range(10):
        assert {r.status_code for r in get_all(server.url + '/balance', 30, bearer(token))} == {403}
        if pids_logging(server.log_text(), cached) >= workers:
            break
    assert pids_logging(server.log_text(), cached) == workers
    # Fresh in every worker's cache just before the revocation.
    answers = get_all(server.url + '/balance/1', 60, bearer(token))
    assert [r.status_code for r in answers] == [200] * 60

    revoke(database_url, 'shop-till')
    time.sleep(RECHECK_SECONDS + 0.2)
    refused = r'refused GET "/balance/1" from 127\.0\.0\.1: 704 .*\(key shop-till\)$'
    answers = get_all(server.url + '/balance/1', 30, bearer(token))
    assert [(r.status_code, r.json()['code']) for r in answers] == [(401, 704)] * 30
    for _ in range(10):
        if pids_logging(server.log_text(), refused) >= workers:
            break
        answers = get_all(server.url + '/balance/1', 30, bearer(token))
        assert {(r.status_code, r.json()['code']) for r in answers} == {(401, 704)}
    assert pids_logging(server.log_text(), refused) == workers
    assert set(server.worker_pids()) == workers, 'a worker was replaced meanwhile'


# -- (b) the bootstrap key ------------------------------------------------------------

@pytest.fixture(params=['sqlite', 'postgresql'])
def fresh_database_url(request, tmp_path):
    """A database that does not hold even the schema yet."""
    if request.param == 'sqlite':
        yield 'sqlite:///%s' % (tmp_path / 'fresh.db')
        return
    request.getfixturevalue('postgres_url')  # skips (or fails in CI) without a server
    admin = open_database(PG_URL)
    admin.connect()
    # CREATE DATABASE cannot run in a transaction.
    admin.connection().autocommit = True
    name = 'balance_api_fresh_%s' % uuid.uuid4().hex[:12]
    admin.execute_sql('CREATE DATABASE %s' % name)
    try:
        yield _with_database(PG_URL, name)
    finally:
        admin.execute_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
        admin.close_all()


def test_two_servers_starting_at_once_create_the_bootstrap_key_once(fresh_database_url):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        starting = [pool.submit(Server, fresh_database_url, 2, None, False) for _ in range(2)]
        concurrent.futures.wait(starting)
    servers = [future.result() for future in starting if future.exception() is None]
    try:
        assert len(servers) == 2, [future.exception() for future in starting]
        logs = [server.log_text() for server in servers]
        announced = [re.findall(r'^BOOTSTRAP TOKEN: (\S*)$', log, re.M) for log in logs]
        assert sorted(len(tokens) for tokens in announced) == [0, 1], logs
        token = [tokens[0] for tokens in announced if tokens][0]
        assert re.fullmatch(r'[A-Za-z0-9_-]{43}', token)
        assert stored_keys(fresh_database_url) == [
            ('bootstrap', 'admin', hashlib.sha256(token.encode('ascii')).hexdigest())]
        for server in servers:
            answer = requests.get(server.url + '/balance', headers=bearer(token), timeout=10)
            assert (answer.status_code, answer.json()) == (200, [])
            # Printed once, on standard output, never through the log.
            assert sum(log.count(token) for log in logs) == 1
    finally:
        for server in servers:
            server.stop()


# -- (c) what the logs show -----------------------------------------------------------

def test_no_token_reaches_the_logs_and_refusals_are_logged(server, database_url):
    server.session().post(server.url + '/user', data={'uid': 1})
    valid = new_key(database_url, 'log-reader', [READER])
    revoked = new_key(database_url, 'log-revoked', [READER])
    revoke(database_url, 'log-revoked')
    unknown = secrets.token_urlsafe(32)

    def get(path, headers):
        return requests.get(server.url + path, headers=headers, timeout=10)

    assert get('/balance/1', bearer(valid)).status_code == 200
    assert get('/balance/1', {'X-Client-Authorization': valid}).status_code == 200
    assert get('/balance/2', bearer(unknown)).json()['code'] == 703
    assert get('/balance/3', bearer(revoked)).json()['code'] == 704
    # Malformed, with a real token inside: another scheme, or both headers at once.
    assert get('/balance/4', {'Authorization': 'Token ' + valid}).json()['code'] == 702
    assert get('/balance/4', {**bearer(valid), 'X-Client-Authorization': valid}
               ).json()['code'] == 702

    # The access log's user field names the key; a refused request has none.
    named = r'^127\.0\.0\.1 - log-reader \[[^\]]+\] "GET /balance/1 HTTP/1\.1" 200 '
    nameless = r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /balance/[234] HTTP/1\.1" 401 '

    def logged(text):
        return len(re.findall(named, text, re.M)), len(re.findall(nameless, text, re.M))
    text = wait_for_log(server, lambda text: logged(text) == (2, 4))
    assert logged(text) == (2, 4), text[-3000:]
    for token in (valid, revoked, unknown, server.headers['Authorization'].split()[1]):
        assert token not in text
        # Nor a recognisable part of one.
        assert token[:16] not in text and token[-16:] not in text

    messages = [message for _, level, message in ERROR_LOG_LINE.findall(text)
                if level == 'WARNING' and message.startswith('refused ')]
    assert messages.count(
        'refused GET "/balance/2" from 127.0.0.1: 703 API key is not valid') == 1, messages
    assert messages.count('refused GET "/balance/3" from 127.0.0.1: 704 API key has been '
                          'revoked (key log-revoked)') == 1, messages
    assert messages.count('refused GET "/balance/4" from 127.0.0.1: 702 Authorization header '
                          'format is not correct') == 2, messages


# -- (d) keys turned off --------------------------------------------------------------

@pytest.fixture
def keyless_server(database_url):
    running = Server(database_url, extra_env={'BALANCE_API_AUTH': 'off'}, admin_key=False)
    yield running
    running.stop()


def test_with_auth_off_anyone_may_call_and_every_answer_says_so(keyless_server, database_url):
    base = keyless_server.url
    answers = [
        requests.post(base + '/user', data={'uid': 1}),
        requests.put(base + '/balance/1', data={'operation': 'add', 'balance': '5'}),
        requests.get(base + '/balance/1'),
        # A header that would be refused with keys on is ignored.
        requests.get(base + '/balance/1', headers={'Authorization': 'Token nonsense'}),
        requests.get(base + '/balance'),
        requests.get(base + '/balance/2'),
        requests.post(base + '/balance/1', data={'x': 1}),
        requests.get(base + '/no/such/route'),
        requests.get(base + '/health'),
        requests.head(base + '/ready'),
        requests.get(base + '/api/docs/static/swagger-ui.css'),
    ]
    assert [r.status_code for r in answers] == [201, 200, 200, 200, 200, 404, 405, 404, 200,
                                                200, 200]
    assert answers[2].json() == {'user_id': 1, 'balance': '5.00'}
    assert [r.headers.get('X-Balance-Auth') for r in answers] == ['off'] * len(answers)

    # Each worker warns as it starts (a forked worker may still be starting).
    workers = all_workers(keyless_server, 3)
    warning = r'^BALANCE_API_AUTH=off: no key is asked for'
    text = wait_for_log(keyless_server, lambda text: pids_logging(text, warning) >= workers)
    assert pids_logging(text, warning) == workers, text
    assert 'BOOTSTRAP TOKEN' not in text
    assert stored_keys(database_url) == []


def test_with_auth_off_a_request_refused_before_the_application_says_so_too(keyless_server):
    # The worker refuses a request it cannot parse without the application.
    with socket.create_connection(('127.0.0.1', keyless_server.port), timeout=10) as sock:
        sock.sendall(b'GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n')
        answer = b''
        while not answer.endswith(b'}'):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    head = answer.partition(b'\r\n\r\n')[0].decode('latin-1')
    assert head.startswith('HTTP/1.1 400'), head
    assert re.search(r'^X-Balance-Auth: off\r?$', head, re.M | re.I), head


# -- (e) the open routes --------------------------------------------------------------

def test_open_routes_need_no_key_and_the_rest_ask_for_one(server):
    base = server.url
    for path in ('/health', '/ready', '/openapi.json', '/api/docs',
                 '/api/docs/static/swagger-ui-bundle.js'):
        assert requests.get(base + path).status_code == 200, path
        assert requests.head(base + path).status_code == 200, path

    head = requests.head(base + '/balance/1')
    assert head.status_code == 401
    assert head.headers['WWW-Authenticate'] == 'Bearer'
    assert head.content == b''
    get = requests.get(base + '/balance/1')
    assert get.status_code == 401
    assert get.headers['WWW-Authenticate'] == 'Bearer'
    assert get.json() == {'code': 701, 'message': 'An API key is required '
                          '(Authorization: Bearer <token> or X-Client-Authorization)'}
