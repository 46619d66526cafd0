"""/metrics under a real gunicorn with several workers, started both documented ways.

Requests spread over the workers; the page, whichever worker answers it,
adds up every worker's counts, exactly, once each has published them (at
most a second after counting). A worker killed with SIGKILL keeps its
published counts in the sums, and its live gauge (``balance_api_workers``)
goes.
"""
import concurrent.futures
import decimal
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from gunicorn_server import ROOT, Server, _admin_key, _free_port, bearer
from metrics_samples import parse, value

WORKERS = 3
HEALTH_REQUESTS = 240
TRANSFERS = 30
DIR_VARIABLE = 'PROMETHEUS_MULTIPROC_DIR'
HEALTH = {'route': '/health', 'method': 'GET', 'status': '200'}


class GunicornCommand(Server):
    """``gunicorn -c gunicorn.conf.py wsgi:application``, on a database migrated
    first (as the README says) with an admin key."""

    def __init__(self, database_url, workers, extra_env=None):
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.headers = bearer(_admin_key(database_url, 'server-%d' % self.port))
        env = {**os.environ, 'DATABASE_URL': database_url, 'BIND': '127.0.0.1:%d' % self.port,
               'WEB_CONCURRENCY': str(workers), **(extra_env or {})}
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'gunicorn', '-c', 'gunicorn.conf.py', 'wsgi:application'],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        self.workers = workers
        self._wait_ready()


def _without_metrics_dir():
    return {name: text for name, text in os.environ.items() if name != DIR_VARIABLE}


def _stale_counts(directory):
    """What a run before this one left: 1000 /health answers of a long-gone worker."""
    os.makedirs(directory, exist_ok=True)
    left = MmapedDict(os.path.join(directory, 'counter_999999.db'))
    left.write_value(mmap_key('balance_api_requests', 'balance_api_requests_total',
                              list(HEALTH), list(HEALTH.values()), 'left over'), 1000.0, 0.0)
    left.close()


def _made_by(server, places):
    """The temporary directory ``server`` made (in memory where the system
    has a file system there, else in TMPDIR): the one its workers count in."""
    pids = server.worker_pids()
    made = [directory for place in places
            for directory in glob.glob(os.path.join(place, 'balance_api-metrics-*'))
            if any(os.path.exists(os.path.join(directory, 'gauge_livesum_%d.db' % pid))
                   for pid in pids)]
    assert len(made) == 1, made
    return made[0]


def _health_answers_by_worker(directory):
    """``{pid: /health answers}`` from each worker's own counter file."""
    found = {}
    for path in glob.glob(os.path.join(directory, 'counter_*.db')):
        pid = int(os.path.basename(path)[len('counter_'):-len('.db')])
        for key, count, _, _ in MmapedDict.read_all_values_from_file(path):
            _, sample, labels, _ = json.loads(key)
            if sample == 'balance_api_requests_total' and labels == HEALTH:
                found[pid] = found.get(pid, 0) + count
    return found


def _scrape(server):
    result = requests.get(server.url + '/metrics', headers=server.headers, timeout=10)
    assert result.status_code == 200, result.text
    return parse(result.text)


def _wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError('timed out waiting for ' + what)


def _spread(server, send, times):
    """``send(server)`` ``times`` times from several threads, each request on a
    connection of its own, so every idle worker takes some."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        statuses = list(pool.map(lambda _: send(server), range(times)))
    assert set(statuses) == {200}, statuses


def _health(server):
    return requests.get(server.url + '/health', headers={'Connection': 'close'},
                        timeout=10).status_code


def _transfer(server):
    return requests.put(server.url + '/transfer', timeout=30,
                        headers={**server.headers, 'Connection': 'close'},
                        data={'sender_id': 1, 'receiver_id': 2, 'balance': '0.01'}).status_code


@pytest.fixture(params=['serve', 'gunicorn'])
def running(request, tmp_path):
    """``serve`` with PROMETHEUS_MULTIPROC_DIR set (to a directory an earlier
    run left files in), ``gunicorn -c gunicorn.conf.py`` without it: then
    the server makes a temporary directory of its own."""
    url = 'sqlite:///%s' % (tmp_path / 'balance.db')
    if request.param == 'serve':
        directory = str(tmp_path / 'metrics')
        _stale_counts(directory)
        server = Server(url, workers=WORKERS, extra_env={DIR_VARIABLE: directory})
        server.named_dir = True
    else:
        temporary = tmp_path / 'tmp'
        temporary.mkdir()
        os.environ, saved = _without_metrics_dir(), os.environ
        try:
            server = GunicornCommand(url, WORKERS, extra_env={'TMPDIR': str(temporary)})
        finally:
            os.environ = saved
        directory = _made_by(server, [str(temporary), '/dev/shm'])
        server.named_dir = False
    server.metrics_dir = directory
    yield server
    server.stop()


def test_every_worker_is_counted_and_a_killed_ones_counts_stay(running):
    server = running
    directory = server.metrics_dir
    session = server.session()
    for uid in (1, 2):
        assert session.post(server.url + '/user', data={'uid': uid}).status_code == 201
    assert session.put(server.url + '/balance/1',
                       data={'operation': 'add', 'balance': '100.00'}).status_code == 200

    _spread(server, _health, HEALTH_REQUESTS)
    _spread(server, _transfer, TRANSFERS)

    _wait_for(lambda: value(_scrape(server), 'balance_api_requests_total',
                            **HEALTH) >= HEALTH_REQUESTS, 'every worker to publish')
    by_worker = _health_answers_by_worker(directory)
    assert sum(by_worker.values()) == HEALTH_REQUESTS, by_worker
    answered = [pid for pid, count in by_worker.items() if count]
    assert len(answered) >= 2, by_worker
    _wait_for(lambda: value(_scrape(server), 'balance_api_journal_entries_total',
                            operation='balance_transfer') >= TRANSFERS, 'the transfers')
    samples = _scrape(server)
    # Exactly: no worker missing, nothing left from an earlier run.
    assert value(samples, 'balance_api_requests_total', **HEALTH) == HEALTH_REQUESTS
    assert value(samples, 'balance_api_journal_entries_total',
                 operation='balance_transfer') == TRANSFERS
    assert decimal.Decimal(repr(value(samples, 'balance_api_money_moved_total',
                                      operation='transfer'))).quantize(
        decimal.Decimal('0.01')) == decimal.Decimal('0.01') * TRANSFERS
    assert value(samples, 'balance_api_workers') == WORKERS

    killed = answered[0]
    os.kill(killed, signal.SIGKILL)
    live_gauge = os.path.join(directory, 'gauge_livesum_%d.db' % killed)

    def replaced():
        pids = server.worker_pids()
        return (killed not in pids and len(pids) == WORKERS and not os.path.exists(live_gauge)
                and value(_scrape(server), 'balance_api_workers') == WORKERS)

    # Were the dead worker's gauge kept, the sum would be one too many.
    _wait_for(replaced, 'the killed worker to be replaced and forgotten')
    samples = _scrape(server)
    assert value(samples, 'balance_api_requests_total', **HEALTH) == HEALTH_REQUESTS
    assert value(samples, 'balance_api_journal_entries_total',
                 operation='balance_transfer') == TRANSFERS

    # Stopped at once: each worker writes its last counts as it exits.
    _spread(server, _health, 12)
    server.stop()
    server.stop = lambda: None
    if server.named_dir:
        # A directory named for the server stays, with every count.
        assert sum(_health_answers_by_worker(directory).values()) == HEALTH_REQUESTS + 12
    else:
        # One the server made for itself goes with it.
        assert not os.path.exists(directory)
