"""Where a request's time goes in a sync worker: CPU per request, part by part.

Runs in one process, without wrk: gunicorn's own sync worker (the service's
``ApiSyncWorker``, with the service's gunicorn settings and access logger)
handles each request from a real loopback TCP connection, and the same
requests are also given to the WSGI application alone, with keys off, and
to the database statement alone. The differences between those runs are
what each layer costs. Every variant runs in interleaved rounds, so a busy
machine slows them all alike; the table shows each variant's median over
the rounds.

    .venv/bin/python -m bench.request_cost [--pg URL] [--requests N] [--rounds N]

It makes a database of its own on the server (``bench_cost_<pid>``), with
200 funded users, and drops it at the end.
"""
import argparse
import dataclasses
import importlib.util
import io
import os
import random
import socket
import statistics
import sys
import tempfile
import time

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

USERS = 200
FORM = 'application/x-www-form-urlencoded'


def _on_server(server_url, statement):
    admin = psycopg2.connect(server_url.rstrip('/') + '/postgres')
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(statement)
    finally:
        admin.close()


class Requests:
    """The requests of one kind, as raw HTTP and as WSGI environs."""

    def __init__(self, kind, token):
        self.kind = kind
        self.token = token

    def pick(self):
        """(method, path, body) of a random request of this kind."""
        if self.kind == 'transfer':
            sender = random.randint(1, USERS)
            receiver = random.randint(1, USERS - 1)
            receiver += receiver >= sender
            return 'PUT', '/transfer', b'sender_id=%d&receiver_id=%d&balance=0.01' % (
                sender, receiver)
        if self.kind == 'add_sub':
            operation = random.choice((b'add', b'sub'))
            return 'PUT', '/balance/%d' % random.randint(1, USERS), (
                b'operation=%s&balance=0.01' % operation)
        if self.kind == 'balance':
            return 'GET', '/balance/%d' % random.randint(1, USERS), b''
        return 'GET', '/health', b''

    def raw(self, token=True):
        method, path, body = self.pick()
        head = ['%s %s HTTP/1.1' % (method, path), 'Host: 127.0.0.1', 'User-Agent: bench']
        if token:
            head.append('Authorization: Bearer ' + self.token)
        if body:
            head += ['Content-Type: ' + FORM, 'Content-Length: %d' % len(body)]
        return ('\r\n'.join(head) + '\r\n\r\n').encode('latin-1') + body

    def environ(self, token=True):
        method, path, body = self.pick()
        environ = {
            'REQUEST_METHOD': method, 'PATH_INFO': path, 'RAW_URI': path, 'QUERY_STRING': '',
            'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '8000', 'SERVER_PROTOCOL': 'HTTP/1.1',
            'REMOTE_ADDR': '127.0.0.1', 'HTTP_HOST': '127.0.0.1', 'HTTP_USER_AGENT': 'bench',
            'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(body),
            'wsgi.errors': sys.stderr, 'wsgi.version': (1, 0), 'wsgi.multithread': False,
            'wsgi.multiprocess': True, 'wsgi.run_once': False,
        }
        if token:
            environ['HTTP_AUTHORIZATION'] = 'Bearer ' + self.token
        if body:
            environ['CONTENT_TYPE'] = FORM
            environ['CONTENT_LENGTH'] = str(len(body))
        return environ


_FIXED_ANSWER = (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n'
                 b'Connection: close\r\n\r\n{}')


def _sockets_only(listener, requests, count):
    """The connection work of ``_through_worker`` with no server code: what
    the harness itself and the kernel cost, subtracted from gunicorn's part."""
    address = listener.getsockname()
    listener.listen(64)
    for _ in range(count):
        client = socket.create_connection(address)
        client.sendall(requests.raw())
        client.shutdown(socket.SHUT_WR)
        served, _ = listener.accept()
        served.setblocking(True)
        served.recv(65536)
        served.sendall(_FIXED_ANSWER)
        served.shutdown(socket.SHUT_WR)
        served.close()
        client.recv(65536)
        client.close()


def _worker(app, access_log, http_parser=None):
    """The service's sync worker, as gunicorn would make it, serving ``app``."""
    from gunicorn.config import Config

    from balance_api.web.access_log import AccessLogger
    from balance_api.web.server import DEFAULTS
    from balance_api.web.worker import ApiSyncWorker

    config = Config()
    for key, value in DEFAULTS.items():
        config.set(key, value)
    config.set('accesslog', access_log)
    config.set('errorlog', os.devnull)
    if http_parser:
        config.set('http_parser', http_parser)
    listener = socket.create_server(('127.0.0.1', 0))
    worker = ApiSyncWorker(0, os.getpid(), [listener], None, 30, config, AccessLogger(config))
    worker.wsgi = app
    return worker, listener


def _through_worker(worker, listener, requests, count, token=True):
    """``count`` requests over loopback TCP into ``worker.handle``."""
    address = listener.getsockname()
    listener.listen(64)
    for _ in range(count):
        client = socket.create_connection(address)
        client.sendall(requests.raw(token))
        # What a client does after its last request; gunicorn's close then
        # sees the end at once instead of waiting for it.
        client.shutdown(socket.SHUT_WR)
        served, peer = listener.accept()
        served.setblocking(True)
        worker.handle(listener, served, peer)
        answer = client.recv(65536)
        client.close()
        if not answer.startswith(b'HTTP/1.1 2'):
            raise RuntimeError('refused: %r' % answer[:300])


def _through_app(app, requests, count, token=True):
    for _ in range(count):
        statuses = []
        body = b''.join(app(requests.environ(token), lambda s, h, e=None: statuses.append(s)))
        if not statuses[0].startswith('2'):
            raise RuntimeError('refused: %s %r' % (statuses[0], body[:300]))


def _statement_only(db, count):
    from balance_api.money import pg_sql
    for _ in range(count):
        sender = random.randint(1, USERS)
        receiver = random.randint(1, USERS - 1)
        receiver += receiver >= sender
        pg_sql.post(db, 'balance_transfer', sender, receiver, 1, 'bench', 'bench')


def measure(url, requests_per_round, rounds, say=print):
    os.environ['DATABASE_URL'] = url
    from balance_api import create_app
    from balance_api.auth import keys
    from balance_api.config import Settings
    from balance_api.storage.db import migrate, open_database
    from balance_api.web.middleware import keep_connections

    settings = Settings.from_env()
    app_db = open_database(url, pool_size=settings.pool_size)
    migrate(app_db)
    keep_connections(True)   # as in a sync worker (balance_api.web.server)
    app = create_app(settings, db=app_db)
    with app_db.connection_context():
        token = keys.create_key(app_db, 'bench-cost', ['admin'])
    no_keys = create_app(dataclasses.replace(settings, auth=False), db=app_db)
    for uid in range(1, USERS + 1):
        _through_app(app, _Fixed('POST', '/user', ('{"uid": %d}' % uid).encode(), token,
                                 'application/json'), 1)
        _through_app(app, _Fixed('PUT', '/balance/%d' % uid,
                                 b'operation=add&balance=1000000', token), 1)

    log_dir = tempfile.mkdtemp(prefix='bench-cost-')
    worker, listener = _worker(app, os.path.join(log_dir, 'access.log'))
    quiet, quiet_listener = _worker(app, None)
    python_parser, python_parser_listener = _worker(app, None, http_parser='python')
    bare_listener = socket.create_server(('127.0.0.1', 0))
    kinds = {kind: Requests(kind, token) for kind in ('transfer', 'add_sub', 'balance', 'health')}

    def variant(name, run):
        return name, run

    variants = [
        variant('health: worker, access log', lambda n: _through_worker(
            worker, listener, kinds['health'], n, token=False)),
        variant('health: application only', lambda n: _through_app(
            app, kinds['health'], n, token=False)),
        variant('transfer: worker, access log', lambda n: _through_worker(
            worker, listener, kinds['transfer'], n)),
        variant('transfer: worker, no access log', lambda n: _through_worker(
            quiet, quiet_listener, kinds['transfer'], n)),
        variant('transfer: worker, no access log, Python HTTP parser', lambda n: _through_worker(
            python_parser, python_parser_listener, kinds['transfer'], n)),
        variant('transfer: sockets only (no server code)', lambda n: _sockets_only(
            bare_listener, kinds['transfer'], n)),
        variant('transfer: application only', lambda n: _through_app(
            app, kinds['transfer'], n)),
        variant('transfer: application only, keys off', lambda n: _through_app(
            no_keys, kinds['transfer'], n, token=False)),
        variant('transfer: ledger_post statement only', lambda n: _statement_only(app_db, n)),
        variant('add/sub: worker, access log', lambda n: _through_worker(
            worker, listener, kinds['add_sub'], n)),
        variant('balance: worker, access log', lambda n: _through_worker(
            worker, listener, kinds['balance'], n)),
    ]
    for _, run in variants:           # warm-up: caches, prepared statements
        run(50)
    if os.environ.get('BENCH_COST_ONLY'):
        # One variant, a fixed number of times, nothing timed: for an
        # instruction counter (valgrind --tool=callgrind) run at two counts.
        dict(variants)[os.environ['BENCH_COST_ONLY']](requests_per_round)
        raise SystemExit(0)
    if os.environ.get('BENCH_COST_PROFILE'):
        import cProfile
        import pstats
        profile = cProfile.Profile()
        profile.enable()
        dict(variants)[os.environ['BENCH_COST_PROFILE']](requests_per_round)
        profile.disable()
        pstats.Stats(profile).sort_stats('tottime').print_stats(40)
        raise SystemExit(0)
    cpu = {name: [] for name, _ in variants}
    wall = {name: [] for name, _ in variants}
    for round_number in range(rounds):
        for name, run in variants:
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            run(requests_per_round)
            cpu[name].append((time.process_time() - started_cpu) / requests_per_round * 1e6)
            wall[name].append((time.perf_counter() - started_wall) / requests_per_round * 1e6)
        say('round %d/%d done' % (round_number + 1, rounds))
    return {name: {'cpu_us': statistics.median(cpu[name]), 'wall_us': statistics.median(wall[name]),
                   'cpu_us_spread': [min(cpu[name]), max(cpu[name])]} for name, _ in variants}


class _Fixed(Requests):
    """One request, always the same (the setup's)."""

    def __init__(self, method, path, body, token, content_type=FORM):
        super().__init__('fixed', token)
        self.request = (method, path, body)
        self.content_type = content_type

    def pick(self):
        return self.request

    def environ(self, token=True):
        environ = super().environ(token)
        environ['CONTENT_TYPE'] = self.content_type
        return environ


def breakdown(figures):
    """The parts of a transfer's worker CPU, from the variants' differences."""
    f = {name: value['cpu_us'] for name, value in figures.items()}
    worker = f['transfer: worker, access log']
    parts = [
        ('loopback connection (kernel, both ends)', f['transfer: sockets only (no server code)']),
        ('gunicorn: accept, parse, environ, write, close',
         f['transfer: worker, no access log'] - f['transfer: application only']
         - f['transfer: sockets only (no server code)']),
        ('access log line', worker - f['transfer: worker, no access log']),
        ('API key check (hash, cache, permit)',
         f['transfer: application only'] - f['transfer: application only, keys off']),
        ('ledger_post statement (psycopg2 client side)', f['transfer: ledger_post statement only']),
        ('application: routing, middleware, body, validation, idempotency, JSON',
         f['transfer: application only, keys off'] - f['transfer: ledger_post statement only']),
    ]
    return worker, parts


def _parser_in_use():
    if importlib.util.find_spec('gunicorn_h1c') is None:
        return "gunicorn's Python parser"
    return "gunicorn's C parser, gunicorn_h1c"


def render(figures):
    lines = ['| variant | CPU µs/request | spread | wall µs/request |', '|---|---|---|---|']
    for name, value in figures.items():
        lines.append('| %s | %.0f | %.0f-%.0f | %.0f |' % (
            name, value['cpu_us'], value['cpu_us_spread'][0], value['cpu_us_spread'][1],
            value['wall_us']))
    worker, parts = breakdown(figures)
    lines += ['', 'A transfer in the worker, %.0f µs of CPU (the HTTP parser: %s):' % (
        worker, _parser_in_use()), '',
              '| part | CPU µs | share |', '|---|---|---|']
    for name, value in parts:
        lines.append('| %s | %.0f | %.0f%% |' % (name, value, 100 * value / worker))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.request_cost', description=__doc__.split('\n\n')[0])
    parser.add_argument('--pg', default=os.environ.get('BENCH_PG_URL', 'postgresql://postgres@127.0.0.1:5432'),
                        help='the PostgreSQL server (default: %(default)s)')
    parser.add_argument('--requests', type=int, default=500, help='requests per variant and round')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--output', default=os.path.join(ROOT, 'bench', 'results', 'request_cost.md'))
    options = parser.parse_args(argv)
    name = 'bench_cost_%d' % os.getpid()
    _on_server(options.pg, 'CREATE DATABASE %s' % name)
    url = options.pg.rstrip('/') + '/' + name
    try:
        figures = measure(url, options.requests, options.rounds,
                          say=lambda text: print(text, file=sys.stderr))
    finally:
        from balance_api.storage.db import database
        if database.obj is not None:
            database.obj.close_all()
        _on_server(options.pg, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    text = render(figures)
    print(text)
    os.makedirs(os.path.dirname(options.output), exist_ok=True)
    with open(options.output, 'w') as out:
        out.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
