"""Several instances of the service against one PostgreSQL, behind one nginx
configured by ``proxy-config --upstream A --upstream B``: one instance dies
mid-traffic, and no transfer is lost or made twice; a request an instance
took and never answered is not sent to another.

Clients send every transfer with an Idempotency-Key and retry it with the
same key when the proxy answers 502 (nginx never passes a request it sent
to one instance on to another): the retry goes to the surviving instance,
which runs it once, or replays it if the dead instance had committed it.
"""
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal

import pytest
import requests

from balance_api.money.verify import verify_ledger
from balance_api.storage.db import database, open_database
from balance_api.web.proxy import FAIL_TIMEOUT
from gunicorn_server import Server, _free_port
from conftest import nginx_binary
from test_proxy import Nginx, _write_config

USERS = list(range(1, 21))
OPENING = Decimal('1000.00')
THREADS = 8
TRANSFERS_PER_THREAD = 40
# Retries of one transfer (same key) while an instance goes away.
RETRIES = 20
# How long nginx leaves out an instance whose connection failed.
FAIL_SECONDS = int(FAIL_TIMEOUT.rstrip('s'))


def _kill_instance(server):
    """kill -9 the master and every worker: the instance is gone at once."""
    pids = [server.process.pid] + server.worker_pids()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait(timeout=10)


def _transfer(http, base, sender, receiver, amount, key):
    """One transfer, retried with its key until an instance answers it."""
    for attempt in range(RETRIES):
        try:
            answer = http.put(base + '/transfer', headers={'Idempotency-Key': key},
                              data={'sender_id': sender, 'receiver_id': receiver,
                                    'balance': str(amount), 'trans_desc': key}, timeout=30)
        except requests.ConnectionError:
            time.sleep(0.1)
            continue
        if answer.status_code in (502, 503, 504):
            time.sleep(0.1)
            continue
        return answer.status_code, answer.json(), attempt
    raise AssertionError('transfer %s got no answer in %d tries' % (key, RETRIES))


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_an_instance_dying_mid_traffic_loses_and_doubles_nothing(database_url, tmp_path):
    binary = nginx_binary()
    first = Server(database_url, workers=2)
    second = Server(database_url, workers=2)
    prefix = tmp_path / 'nginx'
    prefix.mkdir()
    listen = '127.0.0.1:%d' % _free_port()
    conf = _write_config(prefix, listen, '127.0.0.1:%d' % first.port,
                         '127.0.0.1:%d' % second.port)
    base = 'http://' + listen
    proxy = Nginx(binary, prefix, conf, base)
    stopped = []
    try:
        setup = requests.Session()
        setup.headers.update(first.headers)
        for uid in USERS:
            assert setup.post(base + '/user', json={'uid': uid}).status_code == 201
            assert setup.put(base + '/balance/%d' % uid,
                             data={'operation': 'add', 'balance': str(OPENING)}).status_code == 200

        results, failures = [], []
        halfway = threading.Event()

        def client(number):
            rng = random.Random(number)
            http = requests.Session()
            http.headers.update(first.headers)
            try:
                for done in range(TRANSFERS_PER_THREAD):
                    sender, receiver = rng.sample(USERS, 2)
                    amount = Decimal(rng.randint(1, 500)) / 100
                    key = 'instances-%d-%d-%s' % (number, done, uuid.uuid4().hex[:8])
                    results.append((key, amount) + _transfer(http, base, sender, receiver,
                                                             amount, key))
                    if done == TRANSFERS_PER_THREAD // 2:
                        halfway.set()
            except Exception as exc:  # reported below, with the others
                failures.append(repr(exc))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        halfway.wait(timeout=120)
        _kill_instance(first)
        stopped.append(first)
        for thread in threads:
            thread.join(timeout=300)
        assert not failures, failures
        assert len(results) == THREADS * TRANSFERS_PER_THREAD

        statuses = Counter(status for _, _, status, _, _ in results)
        assert set(statuses) <= {200, 409}, statuses
        assert statuses[200] > 0
        retried = sum(1 for *_, attempt in results if attempt)
        # The surviving instance took what the dead one could not answer.
        check = requests.Session()
        check.headers.update(second.headers)
        history = check.get(base + '/history').json()
        by_description = Counter(row['transaction_description'] for row in history
                                 if row['operation'] == 'balance_transfer')
        for key, _, status, body, _ in results:
            assert by_description[key] == (1 if status == 200 else 0), (key, status, body)
        balances = check.get(base + '/balance').json()
        assert sum(Decimal(b['balance']) for b in balances) == OPENING * len(USERS)
        assert all(Decimal(b['balance']) >= 0 for b in balances)
        assert second.log_text().count('PUT /transfer') > 0
        print('transfers: %s, retried after the kill: %d' % (dict(statuses), retried))
    finally:
        proxy.stop()
        for server in (first, second):
            if server not in stopped:
                server.stop()

    db = open_database(database_url)
    database.initialize(db)
    with db.connection_context():
        report = verify_ledger(db)
    assert report.ok, report.problems


class AnswersThenDies:
    """An upstream that does the work and is gone before it answers: it hands
    each request to the real instance, reads the whole answer, then closes
    the proxy's connection without a byte, as an instance killed right after
    its commit would."""

    def __init__(self, real_port):
        self.real_port = real_port
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.taken = []      # the request lines it took
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                request = self._read_request(connection)
                if not request:
                    continue
                self.taken.append(request.split(b'\r\n', 1)[0].decode('latin-1'))
                with socket.create_connection(('127.0.0.1', self.real_port)) as real:
                    real.sendall(request)
                    while real.recv(65536):
                        pass

    @staticmethod
    def _read_request(connection):
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return b''
            data += chunk
        head, body = data.split(b'\r\n\r\n', 1)
        length = 0
        for line in head.split(b'\r\n')[1:]:
            name, _, value = line.partition(b':')
            if name.strip().lower() == b'content-length':
                length = int(value)
        while len(body) < length:
            body += connection.recv(65536)
        # gunicorn closes after each answer; the proxy's keep-alive stays here.
        return head + b'\r\nConnection: close\r\n\r\n' + body

    def close(self):
        self.listener.close()


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_a_request_an_instance_took_is_never_sent_to_another(database_url, tmp_path):
    """nginx counts PUT as idempotent and would pass a transfer whose instance
    failed before answering on to the next one; without an Idempotency-Key
    (what existing clients send) that runs it twice. The proxy answers 502
    instead: the outcome is unknown to the client, and the journal has it
    at most once."""
    binary = nginx_binary()
    real = Server(database_url, workers=2)
    setup = requests.Session()
    setup.headers.update(real.headers)
    for uid in (1, 2):
        assert setup.post(real.url + '/user', json={'uid': uid}).status_code == 201
    assert setup.put(real.url + '/balance/1', data={'operation': 'add',
                                                    'balance': '100'}).status_code == 200
    dying = AnswersThenDies(real.port)
    prefix = tmp_path / 'nginx'
    prefix.mkdir()
    listen = '127.0.0.1:%d' % _free_port()
    conf = _write_config(prefix, listen, '127.0.0.1:%d' % dying.port, '127.0.0.1:%d' % real.port)
    base = 'http://' + listen
    proxy = Nginx(binary, prefix, conf, base)
    try:
        http = requests.Session()
        http.headers.update(real.headers)
        statuses = {}

        def taken():
            return [line for line in dying.taken if line.startswith('PUT /transfer ')]

        # Each nginx worker takes turns between the instances, and leaves out
        # one that failed for a while (its readiness probe may have met it).
        for _ in range(4):
            time.sleep(FAIL_SECONDS + 0.5)
            for _ in range(4):
                description = 'unkeyed-%d' % len(statuses)
                statuses[description] = http.put(base + '/transfer', data={
                    'sender_id': 1, 'receiver_id': 2, 'balance': '1.00',
                    'trans_desc': description}).status_code
            if taken():
                break
        assert taken(), ('nginx never chose the failing instance', dying.taken)
        history = http.get(base + '/history?uid=2').json()
        rows = Counter(row['transaction_description'] for row in history)
        for description, status in statuses.items():
            # Taken by the failing instance: run there once, answered 502.
            assert rows[description] == 1, (description, status, rows)
            assert status in (200, 502), (description, status)
        assert Counter(statuses.values())[502] == len(taken()), statuses
        assert Decimal(http.get(base + '/balance/2').json()['balance']) == len(statuses)
    finally:
        proxy.stop()
        dying.close()
        real.stop()
