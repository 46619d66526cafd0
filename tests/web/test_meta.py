"""GET /health and GET /ready: the version, and ready only at this version's schema."""
import os
import subprocess
import sys
import tempfile
import time

import falcon
import falcon.testing
import pytest
import requests

from balance_api import __version__, create_app
from balance_api.config import Settings
from balance_api.storage.db import migrate, open_database, roll_back, shipped_migrations
from balance_api.web import error_handlers
from balance_api.web.meta import Ready
from gunicorn_server import ROOT, _free_port
from helpers import ERRORS, assert_ok
from scratch_databases import run_command, scratch_database


@pytest.fixture(params=['sqlite', 'postgresql'])
def unmigrated_url(request, tmp_path):
    with scratch_database(request.param, request, tmp_path) as url:
        yield url


def _close(db):
    db.close_all() if hasattr(db, 'close_all') else db.close()


def _assert_not_migrated(result, pending, unknown=()):
    assert result.status_code == 503, result.text
    body = result.json
    assert body['code'] == 541
    assert body['message'].startswith(ERRORS[541][1] + ': ')
    assert (body['pending'], body['unknown']) == (list(pending), list(unknown))
    for name in [*pending, *unknown]:
        assert name in body['message']


def test_health_reports_the_version(anonymous):
    assert assert_ok(anonymous.simulate_get('/health')) == {'status': 'ok',
                                                             'version': __version__}


def test_the_openapi_document_carries_the_version(anonymous):
    document = assert_ok(anonymous.simulate_get('/openapi.json'))
    assert document['info']['version'] == __version__
    assert '541' in document['paths']['/ready']['get']['responses']['503']['description']


def test_ready_on_a_migrated_database(anonymous):
    assert assert_ok(anonymous.simulate_get('/ready')) == {'status': 'ready'}


def test_not_ready_until_migrated_then_ready_at_once(unmigrated_url, signing_key_file):
    app = create_app(Settings(database_url=unmigrated_url, signing_key_file=signing_key_file))
    client = falcon.testing.TestClient(app)
    db = open_database(unmigrated_url)
    try:
        everything = shipped_migrations()
        for _ in range(2):
            # Never remembered: asked again, it looks again.
            _assert_not_migrated(client.simulate_get('/ready'), everything)
        migrate(db)
        assert assert_ok(client.simulate_get('/ready')) == {'status': 'ready'}
        # Health never asks the database.
        assert client.simulate_get('/health').status_code == 200
    finally:
        _close(db)


def test_a_partly_migrated_database_names_what_is_pending(unmigrated_url, signing_key_file):
    db = open_database(unmigrated_url)
    try:
        migrate(db)
        roll_back(db, '0007_api_keys')
        client = falcon.testing.TestClient(create_app(
            Settings(database_url=unmigrated_url, signing_key_file=signing_key_file)))
        pending = [name for name in shipped_migrations() if name > '0007_api_keys']
        _assert_not_migrated(client.simulate_get('/ready'), pending)
    finally:
        _close(db)


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def ready(database_url, monkeypatch):
    """A Ready resource of its own, on the migrated test database, with a clock
    the test moves and a record of the statements it sends."""
    db = open_database(database_url)
    clock = _Clock()
    resource = Ready(db, clock=clock)
    app = falcon.App()
    app.add_route('/ready', resource)
    error_handlers.install(app)
    statements = []
    execute_sql = db.execute_sql

    def recorded(sql, *args, **kwargs):
        statements.append(sql)
        return execute_sql(sql, *args, **kwargs)

    monkeypatch.setattr(db, 'execute_sql', recorded)
    db.connect()
    yield falcon.testing.TestClient(app), db, clock, statements
    _close(db)


def test_a_good_schema_is_remembered_for_a_while(ready):
    client, db, clock, statements = ready
    assert client.simulate_get('/ready').status_code == 200
    assert any('schema_migration' in sql for sql in statements)
    statements.clear()
    clock.now += Ready.SCHEMA_RECHECK_SECONDS - 1
    assert client.simulate_get('/ready').status_code == 200
    # Meanwhile only: does the database answer?
    assert statements == ['SELECT 1']
    statements.clear()
    clock.now += 1
    assert client.simulate_get('/ready').status_code == 200
    assert any('schema_migration' in sql for sql in statements)


def test_a_migration_from_a_newer_version_is_not_ready(ready):
    client, db, clock, statements = ready
    assert client.simulate_get('/ready').status_code == 200
    db.execute_sql("INSERT INTO schema_migration (name, applied) "
                   "VALUES ('9999_from_the_future', '2030-01-01 00:00:00')")
    try:
        # Seen once the good answer is old.
        assert client.simulate_get('/ready').status_code == 200
        clock.now += Ready.SCHEMA_RECHECK_SECONDS
        _assert_not_migrated(client.simulate_get('/ready'), [], ['9999_from_the_future'])
        _assert_not_migrated(client.simulate_get('/ready'), [], ['9999_from_the_future'])
    finally:
        db.execute_sql("DELETE FROM schema_migration WHERE name = '9999_from_the_future'")
    assert client.simulate_get('/ready').status_code == 200


def test_gunicorn_started_before_migrate_is_not_ready_until_it_is(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'ledger.db')
    port = _free_port()
    env = {**os.environ, 'DATABASE_URL': url, 'BIND': '127.0.0.1:%d' % port,
           'WEB_CONCURRENCY': '1'}
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, '-m', 'gunicorn', '-c', 'gunicorn.conf.py', 'wsgi:application'],
        cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        answer = _first_answer('http://127.0.0.1:%d/ready' % port, server)
        assert answer.status_code == 503
        assert answer.json()['code'] == 541
        assert answer.json()['pending'] == shipped_migrations()
        migrated = run_command(url, 'migrate', cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        answer = requests.get('http://127.0.0.1:%d/ready' % port, timeout=5)
        assert (answer.status_code, answer.json()) == (200, {'status': 'ready'})
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _first_answer(url, server, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, 'gunicorn exited'
        try:
            return requests.get(url, timeout=1)
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError('gunicorn did not answer within %d s' % timeout)
