"""gunicorn's lifecycle under load: a reload (SIGHUP) loses no request and
applies no deposit twice; a stop (SIGTERM) lets in-flight requests finish,
refuses new connections and exits 0 within graceful_timeout.

The clients here retry a request once, with the same Idempotency-Key, when
the connection fails (a kept-alive connection closed by a worker the reload
retired): what a real client does, and safe because the key makes the
retried deposit the same deposit.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from gunicorn_server import ROOT, Server

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}
GRACEFUL_TIMEOUT = 30


@pytest.fixture
def server(database_url):
    running = Server(database_url, workers=3)
    yield running
    running.stop()


def _send(session, method, url, **kwargs):
    """One request, retried once (same headers, same key) if the connection fails."""
    try:
        return session.request(method, url, timeout=30, **kwargs)
    except requests.ConnectionError:
        return session.request(method, url, timeout=30, **kwargs)


def _make_user(server, uid):
    answer = server.session().post(server.url + '/user', data='uid=%d' % uid, headers=FORM)
    assert answer.status_code == 201, answer.text


def _wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_sighup_reloads_workers_without_failing_or_doubling_a_request(server):
    uid = 7
    _make_user(server, uid)
    before = set(server.worker_pids())
    assert len(before) == 3
    stop = threading.Event()
    failures, applied = [], []
    lock = threading.Lock()

    def client(number):
        session = server.session()
        sent = 0
        while not stop.is_set():
            sent += 1
            key = 'hup-%d-%d' % (number, sent)
            amount = Decimal('%d.%02d' % (number + 1, sent % 100))
            try:
                answer = _send(session, 'PUT', server.url + '/balance/%d' % uid, headers={
                    **FORM, 'Idempotency-Key': key}, data='operation=add&balance=%s' % amount)
                read = _send(session, 'GET', server.url + '/balance/%d' % uid)
            except requests.RequestException as exc:
                with lock:
                    failures.append('%s: %r' % (key, exc))
                continue
            with lock:
                if answer.status_code == 200:
                    applied.append(amount)
                else:
                    failures.append('%s: %d %s' % (key, answer.status_code, answer.text))
                if read.status_code != 200:
                    failures.append('read: %d %s' % (read.status_code, read.text))

    threads = [threading.Thread(target=client, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        os.kill(server.process.pid, signal.SIGHUP)
        reloaded = _wait_for(lambda: len(set(server.worker_pids()) - before) >= 3
                             and not set(server.worker_pids()) & before, 15)
        time.sleep(2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert reloaded, (before, server.worker_pids())
    assert server.process.poll() is None
    assert not failures, failures[:10]
    assert len(applied) > 50
    balance = server.session().get(server.url + '/balance/%d' % uid).json()['balance']
    assert Decimal(balance) == sum(applied)


def _deposits(server, uids, each):
    session = server.session()

    def deposit(job):
        uid, number = job
        answer = _send(session, 'PUT', server.url + '/balance/%d' % uid, headers=FORM,
                       data='operation=add&balance=1.00&trans_desc=row-%d' % number)
        assert answer.status_code == 200, answer.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deposit, [(uid, n) for uid in uids for n in range(each)]))


def _new_connection_answer(port, outcome):
    """What a connection opened after the stop began gets: refused, or (while a
    worker still finishing a request holds the listening socket, so the kernel
    still queues connections) closed unanswered once the workers exit."""
    try:
        sock = socket.create_connection(('127.0.0.1', port), timeout=GRACEFUL_TIMEOUT + 5)
    except ConnectionRefusedError:
        outcome.append('refused')
        return
    try:
        sock.sendall(b'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
        outcome.append(sock.recv(65536) or b'closed')
    except ConnectionResetError:
        outcome.append('reset')
    finally:
        sock.close()


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_sigterm_finishes_in_flight_requests_and_exits_0(server):
    uids = list(range(1, 9))
    for uid in uids:
        _make_user(server, uid)
    _deposits(server, uids, 300)
    expected = server.session().get(server.url + '/history').json()
    assert len(expected) >= 2400

    # In flight 1: a long streamed history, read slowly.
    stream = server.session().get(server.url + '/history', stream=True, timeout=60)
    assert stream.status_code == 200
    chunks = stream.iter_content(4096)
    received = [next(chunks)]
    # In flight 2: a deposit whose body has not arrived when the stop begins.
    body = b'operation=add&balance=5.00'
    raw = socket.create_connection(('127.0.0.1', server.port), timeout=30)
    raw.sendall(b'PUT /balance/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                b'Authorization: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n'
                b'Content-Length: %d\r\nConnection: close\r\n\r\n'
                % (server.headers['Authorization'].encode(), len(body)))
    time.sleep(0.5)

    stopped_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    late = []
    late_client = threading.Thread(target=_new_connection_answer, args=(server.port, late))
    late_client.start()
    time.sleep(0.5)
    raw.sendall(body)
    answer = b''
    while True:
        data = raw.recv(65536)
        if not data:
            break
        answer += data
    raw.close()
    assert answer.startswith(b'HTTP/1.1 200 '), answer[:300]
    assert b'"balance": "305.00"' in answer or b'"balance":"305.00"' in answer, answer[-200:]
    for chunk in chunks:
        received.append(chunk)
        time.sleep(0.001)
    assert json.loads(b''.join(received)) == expected

    code = server.process.wait(timeout=GRACEFUL_TIMEOUT + 5)
    assert code == 0, server.log_text()[-3000:]
    assert time.monotonic() - stopped_at < GRACEFUL_TIMEOUT
    late_client.join(timeout=10)
    assert late and late[0] in ('refused', 'reset', b'closed'), late
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(('127.0.0.1', server.port), timeout=2)


def test_gunicorn_conf_passes_check_config(tmp_path):
    done = subprocess.run(
        [sys.executable, '-m', 'gunicorn', '--check-config', '-c', 'gunicorn.conf.py',
         'wsgi:application'],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, 'DATABASE_URL': 'sqlite:///%s' % (tmp_path / 'check.db')})
    assert done.returncode == 0, done.stdout + done.stderr
