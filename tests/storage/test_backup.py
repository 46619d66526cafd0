"""``python -m balance_api backup DEST``: an online, consistent copy of a SQLite
database, taken while transfers are being written."""
import os
import sqlite3
import threading
from decimal import Decimal

import falcon.testing
import pytest

from balance_api import create_app
from balance_api.config import Settings
from balance_api.storage.db import open_database
from gunicorn_server import bearer, create_key_in
from scratch_databases import assert_one_line_error, run_command, sqlite_path

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}
USERS = 4
DEPOSIT = Decimal('1000.00')


@pytest.fixture
def ledger(tmp_path, signing_key_file):
    """A migrated SQLite ledger with USERS users holding DEPOSIT each, and an
    admin client of the service on it."""
    url = 'sqlite:///%s' % (tmp_path / 'ledger.db')
    assert run_command(url, 'migrate', cwd=tmp_path).returncode == 0
    app = create_app(Settings(database_url=url, signing_key_file=signing_key_file))
    db = open_database(url)
    client = falcon.testing.TestClient(app, headers=bearer(create_key_in(db, 'ops', ['admin'])))
    for uid in range(1, USERS + 1):
        assert client.simulate_post('/user', body='uid=%d' % uid, headers=FORM).status_code == 201
        assert client.simulate_put('/balance/%d' % uid, headers=FORM,
                                   body='operation=add&balance=%s' % DEPOSIT).status_code == 200
    yield url, client
    db.close()


class _Transfers(threading.Thread):
    """Transfers between the users, one after another, until stopped."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.done = 0
        self.failures = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            sender = self.done % USERS + 1
            receiver = sender % USERS + 1
            answer = self.client.simulate_put(
                '/transfer', headers=FORM,
                body='sender_id=%d&receiver_id=%d&balance=0.01' % (sender, receiver))
            if answer.status_code != 200:
                self.failures.append(answer.text)
            self.done += 1

    def stop(self):
        self.stopping.set()
        self.join(timeout=60)


def _read(path, sql):
    connection = sqlite3.connect('file:%s?mode=ro' % path, uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_a_backup_taken_under_writes_is_consistent_and_verifies(ledger, tmp_path):
    url, client = ledger
    writer = _Transfers(client)
    writer.start()
    try:
        while writer.done < 20:
            writer.stopping.wait(0.01)
        before = writer.done
        result = run_command(url, 'backup', 'copy.db', cwd=tmp_path)
        during = writer.done - before
    finally:
        writer.stop()
    assert writer.failures == []
    assert result.returncode == 0, result.stderr
    copy = str(tmp_path / 'copy.db')
    assert result.stdout.startswith('backed up %s to %s: ' % (sqlite_path(url), copy))
    # Online: the writer went on while the backup ran.
    assert during > 0
    # One file, no journal or WAL beside it, readable by nobody else.
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith('copy')) == [
        'copy.db']
    assert os.stat(copy).st_mode & 0o077 == 0
    assert _read(copy, 'PRAGMA journal_mode') == [('delete',)]

    verified = run_command('sqlite:///%s' % copy, 'verify', cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1] == 'ledger OK'
    # A state that existed: every transfer whole, no money made or lost, a count
    # of transfers between the first the writer did and the last.
    balances = [Decimal(balance) for balance, in _read(
        copy, 'SELECT balance FROM account WHERE id <> 0')]
    assert sum(balances) == DEPOSIT * USERS
    copied, = _read(copy, "SELECT count(*) FROM journal_entry "
                          "WHERE operation = 'balance_transfer'")[0]
    assert before <= copied <= writer.done
    postings, = _read(copy, 'SELECT count(*) FROM posting p JOIN journal_entry j '
                            "ON p.journal_id = j.id WHERE j.operation = 'balance_transfer'")[0]
    assert postings == 2 * copied


def test_a_restored_backup_serves(ledger, tmp_path, signing_key_file):
    url, _ = ledger
    assert run_command(url, 'backup', 'copy.db', cwd=tmp_path).returncode == 0
    restored = 'sqlite:///%s' % (tmp_path / 'copy.db')
    app = create_app(Settings(database_url=restored, signing_key_file=signing_key_file))
    db = open_database(restored)
    try:
        client = falcon.testing.TestClient(app, headers=bearer(
            create_key_in(db, 'restored', ['admin'])))
        answer = client.simulate_put('/transfer', headers=FORM,
                                     body='sender_id=1&receiver_id=2&balance=5')
        assert answer.status_code == 200, answer.text
        assert client.simulate_get('/balance/2').json['balance'] == '1005.00'
    finally:
        db.close()
    # The service turns WAL back on.
    assert _read(str(tmp_path / 'copy.db'), 'PRAGMA journal_mode') == [('wal',)]


def test_an_existing_destination_is_kept_unless_forced(ledger, tmp_path):
    url, _ = ledger
    (tmp_path / 'copy.db').write_bytes(b'an older backup')
    refused = run_command(url, 'backup', 'copy.db', cwd=tmp_path)
    assert_one_line_error(refused, 1, 'copy.db exists', '--force')
    assert (tmp_path / 'copy.db').read_bytes() == b'an older backup'
    forced = run_command(url, 'backup', 'copy.db', '--force', cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert run_command('sqlite:///%s' % (tmp_path / 'copy.db'), 'verify',
                       cwd=tmp_path).returncode == 0
    # Nothing half-written is left behind.
    assert [name for name in os.listdir(tmp_path) if 'copy' in name] == ['copy.db']


@pytest.mark.parametrize('destination, phrase', [
    ('.', 'is a directory'),
    ('ledger.db', 'is the database itself'),
    ('nowhere/copy.db', 'cannot write nowhere/copy.db'),
])
def test_a_destination_that_cannot_be_used_is_refused(ledger, tmp_path, destination, phrase):
    url, _ = ledger
    assert_one_line_error(run_command(url, 'backup', destination, cwd=tmp_path), 1, phrase)


def test_postgresql_is_pointed_at_its_own_tools(postgres_url, tmp_path):
    result = run_command(postgres_url, 'backup', 'copy.db', cwd=tmp_path)
    assert_one_line_error(result, 2, 'pg_dump', 'pg_basebackup')
    assert os.listdir(tmp_path) == []
