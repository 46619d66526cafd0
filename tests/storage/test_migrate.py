"""Migrations up and down: every ``down()`` undoes its ``up()`` on SQLite and
PostgreSQL, and ``migrate --status`` / ``migrate --down-to NAME --yes`` as an
operator runs them, with data in the ledger and the service working after."""
import fcntl
import json
import subprocess
import sys
import time

import falcon.testing
import pytest
from playhouse.migrations import Runner

from balance_api import create_app
from balance_api.config import Settings
from balance_api.storage.db import (MIGRATIONS_DIR, _MIGRATION_LOCK_ID, is_postgres,
                                    open_database, schema_status, shipped_migrations)
from gunicorn_server import ROOT, bearer, create_key_in
from scratch_databases import assert_one_line_error, run_command, scratch_database, sqlite_path

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}
JSON = {'Content-Type': 'application/json'}


@pytest.fixture(params=['sqlite', 'postgresql'])
def scratch_url(request, tmp_path):
    with scratch_database(request.param, request, tmp_path) as url:
        yield url


def _close(db):
    db.close_all() if hasattr(db, 'close_all') else db.close()


def _fingerprint(db):
    """What the schema holds, in a form two equal schemas share whatever the
    order things were made in or how their SQL was spelled."""
    if is_postgres(db):
        queries = [
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name <> 'schema_migration'",
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migration'",
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
            "AND conrelid::regclass::text <> 'schema_migration'",
            "SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc) FROM pg_proc "
            "WHERE pronamespace = 'public'::regnamespace",
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' "
            "AND sequencename NOT LIKE 'schema_migration%%'",
        ]
        return [sorted(db.execute_sql(query).fetchall()) for query in queries]
    objects = sorted(db.execute_sql(
        "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
        "AND tbl_name <> 'schema_migration'").fetchall())
    columns = []
    for kind, name, _ in objects:
        if kind == 'table':
            columns += [(name, *column[1:]) for column in
                        db.execute_sql('PRAGMA table_info("%s")' % name).fetchall()]
            columns += [(name, *key) for key in
                        db.execute_sql('PRAGMA foreign_key_list("%s")' % name).fetchall()]
        else:
            columns += [(name, *column) for column in
                        db.execute_sql('PRAGMA index_xinfo("%s")' % name).fetchall()]
    return [objects, sorted(columns, key=repr)]


def test_every_down_undoes_its_up(request, tmp_path):
    """Going down one step at a time passes through exactly the schemas going
    up one step at a time passes through, on both databases."""
    for kind in ('sqlite', 'postgresql'):
        with scratch_database(kind, request, tmp_path / 'up') as up_url, \
                scratch_database(kind, request, tmp_path / 'down') as down_url:
            if kind == 'sqlite':
                (tmp_path / 'up').mkdir()
                (tmp_path / 'down').mkdir()
            up_db, down_db = open_database(up_url), open_database(down_url)
            try:
                with up_db.connection_context(), down_db.connection_context():
                    _compare_steps(up_db, down_db)
            finally:
                _close(up_db)
                _close(down_db)


def _compare_steps(up_db, down_db):
    names = shipped_migrations()
    rising, up = [_fingerprint(up_db)], Runner(up_db, MIGRATIONS_DIR)
    for name in names:
        assert up.up(name) == [name]
        rising.append(_fingerprint(up_db))
    down = Runner(down_db, MIGRATIONS_DIR)
    assert down.up() == names
    assert _fingerprint(down_db) == rising[-1]
    for level in range(len(names) - 1, -1, -1):
        assert down.down() == [names[level]]
        assert _fingerprint(down_db) == rising[level], 'down() of %s' % names[level]


# -- the commands -----------------------------------------------------------------------

def _status_lines(url, tmp_path):
    result = run_command(url, 'migrate', '--status', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_status_lists_applied_and_pending(scratch_url, tmp_path):
    names = shipped_migrations()
    assert run_command(scratch_url, 'migrate', cwd=tmp_path).returncode == 0
    lines = _status_lines(scratch_url, tmp_path)
    assert [line.split()[:2] for line in lines[:-1]] == [['applied', name] for name in names]
    assert lines[-1] == 'schema: up to date'
    reverted = run_command(scratch_url, 'migrate', '--down-to', names[-3], '--yes',
                           cwd=tmp_path)
    assert reverted.returncode == 0, reverted.stderr
    assert reverted.stdout == 'reverted: %s, %s\n' % (names[-1], names[-2])
    lines = _status_lines(scratch_url, tmp_path)
    assert lines[-3:] == ['pending  %s' % names[-2], 'pending  %s' % names[-1],
                          'schema: 2 pending: run python -m balance_api migrate']


def test_down_to_without_yes_lists_what_it_would_revert_and_changes_nothing(scratch_url,
                                                                             tmp_path):
    names = shipped_migrations()
    assert run_command(scratch_url, 'migrate', cwd=tmp_path).returncode == 0
    result = run_command(scratch_url, 'migrate', '--down-to', '0007', cwd=tmp_path)
    assert_one_line_error(result, 2, 'destroys', '--yes')
    after = names[names.index('0007_api_keys') + 1:]
    assert result.stdout.splitlines() == ['would revert  %s' % name for name in reversed(after)]
    assert _status_lines(scratch_url, tmp_path)[-1] == 'schema: up to date'


def test_down_to_the_newest_reverts_nothing(scratch_url, tmp_path):
    assert run_command(scratch_url, 'migrate', cwd=tmp_path).returncode == 0
    newest = shipped_migrations()[-1]
    result = run_command(scratch_url, 'migrate', '--down-to', newest, '--yes', cwd=tmp_path)
    assert (result.returncode, result.stdout) == (
        0, 'nothing to revert: no migration after %s is applied\n' % newest)


def _fill(url, signing_key_file):
    """Users, money, points, keys, idempotency records: something in every table."""
    app = create_app(Settings(database_url=url, signing_key_file=signing_key_file))
    db = open_database(url)
    try:
        client = falcon.testing.TestClient(app, headers=bearer(
            create_key_in(db, 'filler', ['admin'])))
        for uid in (1, 2):
            assert client.simulate_post('/user', body='uid=%d' % uid, headers=FORM).status_code \
                == 201
        assert client.simulate_put('/balance/1', body='operation=add&balance=100.50',
                                   headers=FORM).status_code == 200
        transfer = client.simulate_put('/transfer', headers={**FORM, 'Idempotency-Key': 't-1'},
                                       body='sender_id=1&receiver_id=2&balance=40.25')
        assert transfer.status_code == 200, transfer.text
        grant = client.simulate_post('/points/1/add', headers=JSON,
                                     body=json.dumps({'payer': 'DANNON', 'points': 300}))
        assert grant.status_code == 201, grant.text
    finally:
        _close(db)


def _works(url, signing_key_file, tmp_path):
    """The service, after the round trip: the old money is there, new changes work,
    and verify finds the ledger whole."""
    app = create_app(Settings(database_url=url, signing_key_file=signing_key_file))
    db = open_database(url)
    try:
        # Keys went with migration 0007's table: a new one.
        client = falcon.testing.TestClient(app, headers=bearer(
            create_key_in(db, 'after', ['admin'])))
        assert client.simulate_get('/ready').status_code == 200
        assert client.simulate_get('/balance/1').json['balance'] == '60.25'
        assert client.simulate_post('/user', body='uid=3', headers=FORM).status_code == 201
        transfer = client.simulate_put('/transfer', headers={**FORM, 'Idempotency-Key': 't-2'},
                                       body='sender_id=2&receiver_id=3&balance=10')
        assert transfer.status_code == 200, transfer.text
        grant = client.simulate_post('/points/3/add', headers=JSON,
                                     body=json.dumps({'payer': 'DANNON', 'points': 50}))
        assert grant.status_code == 201, grant.text
        spend = client.simulate_post('/points/3/spend', headers=JSON,
                                     body=json.dumps({'points': 20}))
        assert spend.status_code == 200, spend.text
    finally:
        _close(db)
    verified = run_command(url, 'verify', cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1] == 'ledger OK'


@pytest.mark.parametrize('down_to', ['0001_ledger', 'zero'])
def test_down_and_up_again_with_data_and_the_service_works(scratch_url, down_to, tmp_path,
                                                           signing_key_file):
    names = shipped_migrations()
    assert run_command(scratch_url, 'migrate', cwd=tmp_path).returncode == 0
    _fill(scratch_url, signing_key_file)
    result = run_command(scratch_url, 'migrate', '--down-to', down_to, '--yes', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    kept = names[:1] if down_to == '0001_ledger' else []
    assert result.stdout == 'reverted: %s\n' % ', '.join(reversed(names[len(kept):]))
    db = open_database(scratch_url)
    try:
        with db.connection_context():
            assert [name for name, _ in schema_status(db).applied] == kept
            tables = set(db.get_tables()) - {'schema_migration', 'sqlite_sequence'}
            assert tables == ({'account', 'journal_entry', 'posting', 'idempotency_record'}
                              if kept else set())
    finally:
        _close(db)
    again = run_command(scratch_url, 'migrate', cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == 'applied: %s\n' % ', '.join(names[len(kept):])
    if kept:
        _works(scratch_url, signing_key_file, tmp_path)
    else:
        # Everything went: the ledger starts again from nothing.
        _fill(scratch_url, signing_key_file)
        _works(scratch_url, signing_key_file, tmp_path)


def test_down_to_waits_for_the_migration_lock(scratch_url, tmp_path):
    assert run_command(scratch_url, 'migrate', cwd=tmp_path).returncode == 0
    with _holding_the_migration_lock(scratch_url):
        rollback = subprocess.Popen(
            [sys.executable, '-m', 'balance_api', 'migrate', '--down-to', '0008', '--yes'],
            cwd=str(tmp_path), env={'PATH': '/usr/bin:/bin', 'PYTHONPATH': ROOT,
                                    'DATABASE_URL': scratch_url},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert rollback.poll() is None, rollback.communicate()
    out, err = rollback.communicate(timeout=60)
    assert rollback.returncode == 0, err
    assert out.startswith('reverted: ')


class _holding_the_migration_lock:
    """The lock ``migrate`` takes: an advisory lock on PostgreSQL, a file lock
    next to the SQLite file."""

    def __init__(self, url):
        self.url = url

    def __enter__(self):
        if self.url.startswith('sqlite'):
            self.handle = open(sqlite_path(self.url) + '.migrate-lock', 'a')
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        else:
            self.db = open_database(self.url)
            self.db.connect()
            self.db.execute_sql('SELECT pg_advisory_lock(%s)', (_MIGRATION_LOCK_ID,))

    def __exit__(self, *exc_info):
        if self.url.startswith('sqlite'):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
        else:
            self.db.execute_sql('SELECT pg_advisory_unlock(%s)', (_MIGRATION_LOCK_ID,))
            _close(self.db)
