"""nginx in front of gunicorn, configured by ``proxy-config``: slow clients do
not hold the sync workers, long answers pass whole, request ids go through."""
import argparse
import contextlib
import datetime
import io
import os
import re
import socket
import subprocess
import threading
import time

import pytest
import requests

from balance_api.config import Settings
from balance_api.money.ledger import Ledger
from balance_api.storage.db import database, open_database
from balance_api.web.proxy import add_proxy_command
from conftest import nginx_binary
from gunicorn_server import Server, _free_port

UID = 1
HISTORY_ROWS = 10000
SLOW_HEADER_CLIENTS = 300
SLOW_READERS = 20
# Bytes a slow reader takes per READ_PAUSE seconds: about 1 KB/s.
READ_CHUNK = 1024
READ_PAUSE = 1.0
# A normal request through nginx while the slow clients hold on.
NORMAL_LATENCY = 1.0


def _fill_history(database_url):
    """HISTORY_ROWS deposits for UID, written in one transaction (a few seconds)."""
    db = open_database(database_url)
    # The models go through the application's database proxy.
    before = database.obj
    database.initialize(db)
    try:
        ledger = Ledger(db)
        with db.connection_context():
            ledger.create_user(UID)
            with db.atomic():
                for number in range(HISTORY_ROWS - 1):
                    ledger.change_balance(UID, 'add', 1, description='deposit %d' % number)
    finally:
        database.initialize(before)
        db.close_all()


def _write_config(prefix, listen, *upstreams):
    parser = argparse.ArgumentParser()
    handlers = add_proxy_command(parser.add_subparsers(dest='command'))
    arguments = ['proxy-config', '--listen', listen, '--prefix', str(prefix)]
    for upstream in upstreams:
        arguments += ['--upstream', upstream]
    args = parser.parse_args(arguments)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert handlers[args.command](Settings(), args) == 0
    path = prefix / 'nginx.conf'
    path.write_text(out.getvalue())
    return path


class Nginx:
    def __init__(self, binary, prefix, conf, url):
        self.binary, self.prefix, self.conf, self.url = binary, str(prefix), str(conf), url
        self.log = open(os.path.join(self.prefix, 'stderr.log'), 'wb')
        self.process = subprocess.Popen(
            [binary, '-p', self.prefix, '-c', self.conf, '-e', self.prefix + '/error.log',
             '-g', 'daemon off;'], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('nginx exited: %s' % self.errors())
            try:
                if requests.get(url + '/health', timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError('nginx did not answer in 15 s: %s' % self.errors())

    def errors(self):
        with open(os.path.join(self.prefix, 'error.log'), errors='replace') as handle:
            return handle.read()

    def access_log(self):
        with open(os.path.join(self.prefix, 'access.log'), errors='replace') as handle:
            return handle.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _request_text(path, host, headers):
    lines = ['GET %s HTTP/1.1' % path, 'Host: %s' % host, 'Connection: close']
    lines += ['%s: %s' % item for item in headers.items()]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('ascii')


class SlowReader(threading.Thread):
    """Asks for the history and reads it at about 1 KB/s until told to stop."""

    def __init__(self, port, headers, stop):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        # A small receive buffer, so the kernel does not take the answer in for us.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect(('127.0.0.1', port))
        self.sock.sendall(_request_text('/history?uid=%d' % UID, '127.0.0.1:%d' % port, headers))
        self.stop, self.received, self.first, self.done, self.error = stop, 0, b'', False, None
        self.started = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                chunk = self.sock.recv(READ_CHUNK)
                if not chunk:
                    self.done = True
                    break
                if not self.first:
                    self.first = chunk
                    self.started.set()
                self.received += len(chunk)
                self.stop.wait(READ_PAUSE)
        except OSError as exc:
            self.error = exc
        finally:
            self.started.set()


def _timed_get(url, **kwargs):
    started = time.monotonic()
    response = requests.get(url, timeout=10, **kwargs)
    return response, time.monotonic() - started


def _wait_workers_free(server, timeout=20):
    """gunicorn answers at once again: the slow readers' answers sit in nginx, not in workers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, elapsed = _timed_get(server.url + '/health')
            if elapsed < 0.2:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail('gunicorn workers stay busy behind nginx: the slow readers hold them')


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_nginx_in_front_of_gunicorn(database_url, tmp_path):
    binary = nginx_binary()
    started = time.monotonic()
    _fill_history(database_url)
    fill_seconds = time.monotonic() - started
    server = Server(database_url, workers=3)
    nginx = None
    slow, readers, stop = [], [], threading.Event()
    try:
        port = _free_port()
        proxy = 'http://127.0.0.1:%d' % port
        conf = _write_config(tmp_path, '127.0.0.1:%d' % port, '127.0.0.1:%d' % server.port)
        nginx = Nginx(binary, tmp_path, conf, proxy)

        # (1) 300 clients stuck in their headers, 20 reading a long history at 1 KB/s.
        for _ in range(SLOW_HEADER_CLIENTS):
            sock = socket.create_connection(('127.0.0.1', port), timeout=10)
            sock.sendall(b'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
            slow.append(sock)
        readers = [SlowReader(port, server.headers, stop) for _ in range(SLOW_READERS)]
        for reader in readers:
            reader.start()
        for reader in readers:
            assert reader.started.wait(20), 'a slow reader got no answer'
            assert reader.first.startswith(b'HTTP/1.1 200'), reader.first[:200]
        _wait_workers_free(server)
        latencies = []
        for _ in range(3):
            response, elapsed = _timed_get(proxy + '/health')
            assert response.status_code == 200, response.text
            latencies.append(('/health', elapsed))
            response, elapsed = _timed_get(proxy + '/balance/%d' % UID, headers=server.headers)
            assert response.status_code == 200, response.text
            latencies.append(('/balance/%d' % UID, elapsed))
        print('history rows written in %.1f s; under load: %s' % (
            fill_seconds, ', '.join('%s %.0f ms' % (path, 1000 * s) for path, s in latencies)))
        assert all(elapsed < NORMAL_LATENCY for _, elapsed in latencies), latencies
        # The readers were still at it: slow for real, and not cut off.
        for reader in readers:
            assert reader.error is None and not reader.done, (reader.error, reader.received)
        stop.set()
        for reader in readers:
            reader.join(5)
            reader.sock.close()
        for sock in slow:
            sock.close()
        slow = []

        # (2) A long history and an export pass whole.
        http = server.session()
        direct = http.get(server.url + '/history?uid=%d' % UID, timeout=60)
        proxied = http.get(proxy + '/history?uid=%d' % UID, timeout=60)
        assert direct.status_code == proxied.status_code == 200
        assert direct.content.count(b'deposit ') == HISTORY_ROWS - 1
        assert proxied.content == direct.content
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        export = '/export?date-start=%s&date-end=%s&format=csv' % (today, today)
        direct = http.get(server.url + export, timeout=60)
        proxied = http.get(proxy + export, timeout=60)
        assert direct.status_code == proxied.status_code == 200, direct.text[:500]
        assert direct.content.count(b'\n') >= HISTORY_ROWS
        assert proxied.content == direct.content

        # (3) Request ids: the client's comes back; without one, nginx's.
        response = requests.get(proxy + '/health', headers={'X-Request-ID': 'proxy-test-1'},
                                timeout=10)
        assert response.headers['X-Request-ID'] == 'proxy-test-1'
        response = requests.get(proxy + '/health', timeout=10)
        given = response.headers['X-Request-ID']
        assert re.fullmatch('[0-9a-f]{32}', given), given
        # nginx writes the line as the request ends, which may be just after the answer.
        deadline = time.monotonic() + 5
        while ('id=%s' % given) not in nginx.access_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ('id=%s' % given) in nginx.access_log()
    finally:
        stop.set()
        for reader in readers:
            reader.sock.close()
        for sock in slow:
            sock.close()
        if nginx is not None:
            nginx.stop()
        server.stop()
