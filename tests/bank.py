"""The bank workload: random transfers, deposits and withdrawals under faults.

Many client threads move money between a few accounts (so contention is
high) over HTTP against gunicorn on PostgreSQL, every change with an
Idempotency-Key, while reader threads check what they see and a fault
thread kills workers, restarts PostgreSQL and clients time out and retry.
Afterwards every invariant is checked against the database.

Short runs are part of the test suite (tests/e2e/test_bank.py). Long runs:

    .venv/bin/python tests/bank.py --duration 300 --kill-workers --restart-postgres 3

prints a summary table and exits 1 if any invariant broke.
"""
import argparse
import dataclasses
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from urllib.parse import urlparse, urlunparse

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from balance_api.storage.db import database, migrate, open_database
from balance_api.money.models import JournalEntry
from balance_api.money.verify import verify_ledger
from gunicorn_server import Server  # noqa: E402

OPENING = Decimal('1000.00')
# How long after PostgreSQL is back the service may still answer 503. Measured
# through the same server, so it includes the backlog of every client's
# retries: 2-4 s here when the machine is otherwise idle.
RECOVERY_GRACE = 10.0


@dataclasses.dataclass
class BankConfig:
    duration: float = 20.0
    clients: int = 32
    readers: int = 4
    accounts: int = 8
    workers: int = 4
    kill_workers: bool = False
    postgres_restarts: int = 0
    client_timeouts: bool = False
    seed: int = 1


@dataclasses.dataclass
class Operation:
    key: str
    kind: str            # transfer, add or sub
    amount: Decimal
    sender: int
    receiver: int
    status: int = 0      # the final definitive HTTP status, 0 when unknown
    code: int = 0
    attempts: int = 0


class Tally:
    """Thread-safe counters and event lists shared by the workload threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.responses = Counter()
        self.server_errors = []      # (time, status, code)
        self.reader_violations = []
        self.snapshot_checks = 0
        self.snapshot_violations = []
        self.faults = Counter()
        self.outages = []            # (start, end) of PostgreSQL restarts
        self.recoveries = []         # seconds from PostgreSQL back to a normal answer

    def count(self, outcome):
        with self.lock:
            self.responses[outcome] += 1


def postgres_cluster(database_url):
    """The local cluster (version, name) serving ``database_url``, or None."""
    port = urlparse(database_url).port or 5432
    try:
        listing = subprocess.run(['pg_lsclusters', '-h'], capture_output=True, text=True,
                                 check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return fields[0], fields[1]
    return None


def restart_postgres(cluster):
    version, name = cluster
    subprocess.run(['pg_ctlcluster', '--skip-systemctl-redirect', version, name, 'restart'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class FaultyRun:
    """What every workload under faults shares (tests/points_bank.py's too):
    clients that resend with the same key until the outcome is known, the
    fault thread, and the checks of how the service answered meanwhile.

    A workload says how to set up (``setup``), make a new operation
    (``_new_operation``) and send it (``_request``), how its readers and its
    snapshot thread check what they see (``_reader``, ``_snapshots``) and
    which read tells that the service is healthy (``probe_path``), and may
    keep the final answer's body (``_answered``). ``config`` has at least the fields
    ``duration``, ``workers``, ``kill_workers``, ``postgres_restarts``,
    ``client_timeouts`` and ``seed``; operations have ``status``, ``code``
    and ``attempts``.
    """

    def __init__(self, server, database_url, config):
        self.server = server
        self.base = server.url
        self.database_url = database_url
        self.config = config
        self.cluster = postgres_cluster(database_url) if config.postgres_restarts else None
        if config.postgres_restarts and self.cluster is None:
            raise RuntimeError('restarting PostgreSQL needs the local cluster serving %s'
                               % database_url)
        self.tally = Tally()
        self.operations = []
        self.stop_at = 0.0
        self.give_up_at = 0.0

    def run(self):
        """Set up, then run the clients, the readers and the snapshots under
        faults; returns the seconds taken."""
        self.setup()
        threads = [threading.Thread(target=self._client, args=(self.config.seed * 1000 + i,))
                   for i in range(self.config.clients)]
        threads += [threading.Thread(target=self._reader, args=(self.config.seed * 2000 + i,))
                    for i in range(self.config.readers)]
        threads.append(threading.Thread(target=self._snapshots))
        return self.run_threads(threads)

    def _client(self, seed):
        rng = random.Random(seed)
        session = self.server.session()
        while time.monotonic() < self.stop_at:
            operation = self._new_operation(rng)
            self.operations.append(operation)
            self._settle(session, operation, rng)

    def _reader_violation(self, text):
        with self.tally.lock:
            self.tally.reader_violations.append(text)

    def probe_path(self):
        """A read the service answers 200 whenever it is healthy."""
        raise NotImplementedError

    def _request(self, session, operation, timeout):
        raise NotImplementedError

    def _answered(self, operation, response):
        """Called once with the definitive (not 5xx) answer to ``operation``."""

    def run_threads(self, threads):
        """Run the workload's threads with the fault thread for the configured
        duration (clients finish what is in doubt); returns the seconds taken."""
        started = time.monotonic()
        self.stop_at = started + self.config.duration
        # Clients keep retrying operations in doubt a while after the run ends.
        self.give_up_at = self.stop_at + 30.0
        threads = list(threads) + [threading.Thread(target=self._faults)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started

    def _settle(self, session, operation, rng):
        """Send, and resend with the same key, until the outcome is known or time is up."""
        while time.monotonic() < self.give_up_at:
            operation.attempts += 1
            timeout = rng.uniform(0.01, 0.3) if (self.config.client_timeouts
                                                 and rng.random() < 0.1) else 30
            try:
                response = self._request(session, operation, timeout)
            except requests.Timeout:
                self.tally.count('client timeout')
                continue
            except requests.RequestException:
                # Refused, reset, or cut off mid-answer (a killed worker).
                self.tally.count('connection dropped')
                session = self.server.session()
                time.sleep(0.05)
                continue
            status = response.status_code
            try:
                code = response.json().get('code', 0) if status != 200 else 0
            except ValueError:
                code = -1
            self.tally.count('%d %s' % (status, code or ''))
            if status >= 500:
                with self.tally.lock:
                    self.tally.server_errors.append((time.monotonic(), status, code))
                time.sleep(0.1)
                continue
            operation.status, operation.code = status, code
            self._answered(operation, response)
            return

    def _faults(self):
        rng = random.Random(self.config.seed)
        restarts_at = sorted(rng.uniform(0.2, 0.7) * self.config.duration
                             for _ in range(self.config.postgres_restarts))
        started = time.monotonic()
        while time.monotonic() < self.stop_at:
            time.sleep(rng.uniform(0.5, 2.0))
            if self.config.kill_workers and self.server.kill_worker(rng):
                self.tally.faults['worker killed (kill -9)'] += 1
            if restarts_at and time.monotonic() - started >= restarts_at[0]:
                restarts_at.pop(0)
                outage_start = time.monotonic()
                restart_postgres(self.cluster)
                back = time.monotonic()
                self.tally.faults['PostgreSQL restarted'] += 1
                self.tally.outages.append((outage_start, back))
                self.tally.recoveries.append(self._time_to_recover(back))

    def _time_to_recover(self, back):
        """Seconds from PostgreSQL being back until every worker answers normally."""
        clean = 0
        while time.monotonic() - back < 30:
            try:
                ok = requests.get(self.base + self.probe_path(), headers=self.server.headers,
                                  timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            clean = clean + 1 if ok else 0
            # Enough consecutive answers that every worker must have served some.
            if clean >= 4 * self.config.workers:
                return time.monotonic() - back
            time.sleep(0.02)
        return float('inf')

    def service_results(self):
        """How the service answered under faults, as invariants (name, passed, detail)."""
        results = []
        stray = [(status, code) for moment, status, code in self.tally.server_errors
                 if not (code == 531 and any(start <= moment <= end + RECOVERY_GRACE
                                             for start, end in self.tally.outages))]
        results.append(('no 5xx while PostgreSQL was up (only 531 during restarts)',
                        not stray, str(Counter(stray).most_common(5))))
        if self.tally.outages:
            worst = max(self.tally.recoveries)
            results.append(('normal answers within %.0f s after PostgreSQL is back'
                            % RECOVERY_GRACE, worst <= RECOVERY_GRACE, '%.2f s' % worst))
        return results

    def fault_lines(self):
        """The summary's tables of the answers received and the faults injected."""
        lines = ['| responses | count |', '|---|---|']
        lines += ['| %s | %d |' % item for item in sorted(self.tally.responses.items())]
        lines += ['', '| faults injected | count |', '|---|---|']
        lines += ['| %s | %d |' % item for item in sorted(self.tally.faults.items())] or []
        if self.tally.recoveries:
            lines.append('| slowest recovery after PostgreSQL restart | %.2f s |'
                         % max(self.tally.recoveries))
        return lines

    @staticmethod
    def verdict_lines(results):
        """The summary's table of invariants, and the verdict."""
        lines = ['| invariant | result |', '|---|---|']
        lines += ['| %s | %s |' % (name, 'pass' if ok else 'FAIL: ' + detail)
                  for name, ok, detail in results]
        verdict = all(ok for _, ok, _ in results)
        lines += ['', 'verdict: %s' % ('PASS' if verdict else 'FAIL')]
        return lines


class BankRun(FaultyRun):
    def __init__(self, server, database_url, config):
        super().__init__(server, database_url, config)
        self.accounts = list(range(1, config.accounts + 1))

    # -- the workload ----------------------------------------------------

    def setup(self):
        http = self.server.session()
        for uid in self.accounts:
            http.post(self.base + '/user', data={'uid': uid}, timeout=30).raise_for_status()
            http.put(self.base + '/balance/%d' % uid, timeout=30,
                     data={'operation': 'add', 'balance': str(OPENING)}).raise_for_status()

    def probe_path(self):
        return '/balance/%d' % self.accounts[0]

    def _new_operation(self, rng):
        amount = Decimal(rng.randint(1, 30000)) / 100
        choice = rng.random()
        if choice < 0.7:
            sender, receiver = rng.sample(self.accounts, 2)
            return Operation(uuid.uuid4().hex, 'transfer', amount, sender, receiver)
        uid = rng.choice(self.accounts)
        if choice < 0.85:
            return Operation(uuid.uuid4().hex, 'add', amount, 0, uid)
        return Operation(uuid.uuid4().hex, 'sub', amount, uid, 0)

    def _request(self, session, operation, timeout):
        if operation.kind == 'transfer':
            path = '/transfer'
            data = {'sender_id': operation.sender, 'receiver_id': operation.receiver}
        else:
            uid = operation.receiver if operation.kind == 'add' else operation.sender
            path = '/balance/%d' % uid
            data = {'operation': operation.kind}
        data.update(balance=str(operation.amount), trans_desc=operation.key)
        return session.put(self.base + path, data=data, timeout=timeout,
                           headers={'Idempotency-Key': operation.key})

    def _reader(self, seed):
        rng = random.Random(seed)
        session = self.server.session()
        while time.monotonic() < self.stop_at:
            try:
                if rng.random() < 0.5:
                    response = session.get(self.base + '/balance', timeout=10)
                    rows = response.json() if response.status_code == 200 else []
                    if response.status_code == 200 and len(rows) != len(self.accounts):
                        self._reader_violation('GET /balance returned %d accounts' % len(rows))
                else:
                    uid = rng.choice(self.accounts)
                    response = session.get(self.base + '/balance/%d' % uid, timeout=10)
                    rows = [response.json()] if response.status_code == 200 else []
                    session.get(self.base + '/history?uid=%d&limit=20' % uid, timeout=10)
            except requests.RequestException:
                session = self.server.session()
                continue
            if response.status_code >= 500:
                with self.tally.lock:
                    self.tally.server_errors.append(
                        (time.monotonic(), response.status_code, response.json().get('code')))
            for row in rows:
                if Decimal(row['balance']) < 0:
                    self._reader_violation('negative balance read: %s' % row)

    def _snapshots(self):
        """In one snapshot, the users' money equals what entered minus what left."""
        db = open_database(self.database_url, pool_size=1)
        while time.monotonic() < self.stop_at:
            time.sleep(0.5)
            try:
                with db.connection_context(), db.atomic():
                    db.execute_sql('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
                    users = db.execute_sql(
                        'SELECT COALESCE(SUM(balance), 0) FROM account WHERE id <> 0').fetchone()[0]
                    external = db.execute_sql(
                        'SELECT COALESCE(SUM(amount), 0) FROM posting WHERE account_id = 0'
                    ).fetchone()[0]
            except Exception:
                continue  # PostgreSQL is restarting
            with self.tally.lock:
                self.tally.snapshot_checks += 1
                if users + external != 0:
                    self.tally.snapshot_violations.append(
                        'users hold %s but %s entered the system' % (users, -external))
        db.close_all()

    # -- the checks ------------------------------------------------------

    def check(self):
        """Every invariant, as (name, passed, detail)."""
        db = open_database(self.database_url, pool_size=1)
        database.initialize(db)
        with db.connection_context():
            report = verify_ledger(db)
            journal = Counter()
            rows = {}
            for key, operation, sender, receiver, amount in (
                    JournalEntry.select(JournalEntry.transaction_description,
                                        JournalEntry.operation, JournalEntry.sender_id,
                                        JournalEntry.receiver_id, JournalEntry.amount)
                    .where(JournalEntry.operation.in_(
                        ['balance_add', 'balance_sub', 'balance_transfer'])).tuples()):
                journal[key] += 1
                rows[key] = (operation, sender, receiver, amount)
            balances = db.execute_sql('SELECT id, balance FROM account WHERE id <> 0').fetchall()
        db.close_all()

        results = []
        known_wrong, duplicates, mismatched = [], [], []
        deposits = withdrawals = Decimal('0.00')
        for op in self.operations:
            applied = journal.get(op.key, 0)
            if applied > 1:
                duplicates.append(op.key)
            if op.status == 200 and applied != 1 or op.status and op.status != 200 and applied:
                known_wrong.append((op.key, op.status, applied))
            if op.status not in (0, 200) and not (op.status == 409 and op.code == 505):
                known_wrong.append((op.key, op.status, op.code))
            if applied:
                expected = {'transfer': 'balance_transfer', 'add': 'balance_add',
                            'sub': 'balance_sub'}[op.kind]
                if op.kind == 'transfer':
                    sender, receiver = op.sender, op.receiver
                else:
                    # add and sub rows both read: from the outside (0) to the user.
                    sender, receiver = 0, op.receiver or op.sender
                if rows[op.key] != (expected, sender, receiver, op.amount):
                    mismatched.append((op.key, rows[op.key]))
                if op.kind == 'add':
                    deposits += op.amount
                elif op.kind == 'sub':
                    withdrawals += op.amount
        total = sum((balance for _, balance in balances), Decimal('0.00'))
        expected_total = OPENING * len(self.accounts) + deposits - withdrawals
        unknown = [op for op in self.operations if not op.status]

        results.append(('verify: balances, running sums, hash chains, entries sum to zero',
                        report.ok, '; '.join('%s: %s' % (p.kind, p.detail) for p in report.problems[:5])))
        results.append(('money: sum of balances = opening + deposits - withdrawals',
                        total == expected_total, '%s vs %s' % (total, expected_total)))
        results.append(('no balance negative', all(b >= 0 for _, b in balances), ''))
        results.append(('known outcomes match the journal (200 once, refusals never)',
                        not known_wrong, str(known_wrong[:5])))
        results.append(('no idempotency key applied twice', not duplicates, str(duplicates[:5])))
        results.append(('journal rows carry the requested amounts and parties',
                        not mismatched, str(mismatched[:5])))
        results.append(('outcomes in doubt resolved (applied once or not at all)',
                        all(journal.get(op.key, 0) <= 1 for op in unknown),
                        '%d in doubt' % len(unknown)))
        results.append(('readers saw no negative balance or missing account',
                        not self.tally.reader_violations, str(self.tally.reader_violations[:5])))
        results.append(('snapshot totals consistent (%d snapshots)' % self.tally.snapshot_checks,
                        self.tally.snapshot_checks > 0 and not self.tally.snapshot_violations,
                        str(self.tally.snapshot_violations[:5])))
        return results + self.service_results()

    def summary(self, results, elapsed):
        applied = sum(1 for op in self.operations if op.status == 200)
        refused = sum(1 for op in self.operations if op.status and op.status != 200)
        lines = ['bank run: %.0f s, %d clients, %d readers, %d accounts, %d workers'
                 % (elapsed, self.config.clients, self.config.readers, len(self.accounts),
                    self.config.workers), '',
                 '| operations | count |', '|---|---|',
                 '| started | %d |' % len(self.operations),
                 '| applied (200) | %d |' % applied,
                 '| refused (409, not enough money) | %d |' % refused,
                 '| outcome never learned | %d |' % (len(self.operations) - applied - refused),
                 '| retried at least once | %d |' % sum(op.attempts > 1 for op in self.operations),
                 '']
        lines += self.fault_lines() + [''] + self.verdict_lines(results)
        return '\n'.join(lines)


def run_bank(database_url, config):
    """Start a server on ``database_url``, run the workload, return (run, results, elapsed)."""
    server = Server(database_url, workers=config.workers)
    try:
        run = BankRun(server, database_url, config)
        elapsed = run.run()
    finally:
        server.stop()
    return run, run.check(), elapsed


def maintenance_url(server_url):
    """The server's maintenance database, ``postgres``: every server has one,
    whatever database ``server_url`` names."""
    return urlunparse(urlparse(server_url)._replace(path='/postgres'))


def fresh_database(admin_url, prefix='balance_api_bank'):
    """Create and migrate a database named ``prefix`` and a random suffix on
    the server of ``admin_url``; returns its URL."""
    admin = open_database(maintenance_url(admin_url))
    admin.connect()
    admin.connection().autocommit = True
    name = '%s_%s' % (prefix, uuid.uuid4().hex[:12])
    admin.execute_sql('CREATE DATABASE %s' % name)
    admin.close_all()
    url = urlunparse(urlparse(admin_url)._replace(path='/' + name))
    db = open_database(url)
    migrate(db)
    db.close_all()
    return url


def add_fault_arguments(parser):
    """The command-line options every workload under faults takes."""
    parser.add_argument('--database-url', default=os.environ.get(
        'TEST_DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432'),
        help='server to create a fresh database on (from its maintenance database, postgres)')
    parser.add_argument('--duration', type=float, default=60)
    parser.add_argument('--workers', type=int, default=4)
    parser.add_argument('--kill-workers', action='store_true')
    parser.add_argument('--restart-postgres', type=int, default=0, metavar='N')
    parser.add_argument('--client-timeouts', action='store_true')
    parser.add_argument('--seed', type=int, default=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_fault_arguments(parser)
    parser.add_argument('--clients', type=int, default=32)
    parser.add_argument('--readers', type=int, default=4)
    parser.add_argument('--accounts', type=int, default=8)
    args = parser.parse_args(argv)
    config = BankConfig(args.duration, args.clients, args.readers, args.accounts, args.workers,
                        args.kill_workers, args.restart_postgres, args.client_timeouts, args.seed)
    run, results, elapsed = run_bank(fresh_database(args.database_url), config)
    print(run.summary(results, elapsed))
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == '__main__':
    sys.exit(main())
