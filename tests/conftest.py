"""Fixtures: every API test runs against SQLite and against PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (default: the local server,
postgresql://postgres@127.0.0.1:5432/test). The suite creates a database of
its own next to that one and drops it at the end. When no server answers,
the PostgreSQL half is skipped, unless BALANCE_API_REQUIRE_POSTGRES=1 (set
by CI), which makes it an error.
"""
import os
import uuid
from urllib.parse import urlparse, urlunparse

import falcon.testing
import peewee
import pytest

from balance_api import create_app
from balance_api.config import Settings
from balance_api.storage.db import database, migrate, open_database
from gunicorn_server import ROOT, Server, bearer, create_key_in

ADMIN_KEY_NAME = 'test-admin'

PG_URL = os.environ.get('TEST_DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/test')
REQUIRE_POSTGRES = os.environ.get('BALANCE_API_REQUIRE_POSTGRES') == '1'
FORM = {'Content-Type': 'application/x-www-form-urlencoded'}


def _with_database(url, name):
    return urlunparse(urlparse(url)._replace(path='/' + name))


@pytest.fixture(scope='session')
def postgres_url():
    """A fresh, migrated PostgreSQL database for this test session."""
    admin = open_database(PG_URL)
    try:
        admin.connect()
    except peewee.OperationalError as exc:
        if REQUIRE_POSTGRES:
            pytest.fail('PostgreSQL is required but unreachable at %s: %s' % (PG_URL, exc))
        pytest.skip('no PostgreSQL server answers at %s' % PG_URL)
    name = 'balance_api_test_%s' % uuid.uuid4().hex[:12]
    # CREATE DATABASE cannot run in a transaction.
    admin.connection().autocommit = True
    admin.execute_sql('CREATE DATABASE %s' % name)
    url = _with_database(PG_URL, name)
    db = open_database(url)
    migrate(db)
    db.close_all()
    admin.close_all()
    yield url
    # A fresh connection: tests may have restarted the server meanwhile.
    admin = open_database(PG_URL)
    admin.connect()
    admin.connection().autocommit = True
    admin.execute_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
    admin.close_all()


def _empty_postgres(url):
    db = open_database(url)
    with db.connection_context():
        db.execute_sql('TRUNCATE posting, journal_entry, idempotency_record, points_draw, '
                       'points_transaction, points_entry, points_balance, points_member, '
                       'points_club, api_key RESTART IDENTITY')
        # Row 0, the external counterparty, belongs to the schema.
        db.execute_sql('DELETE FROM account WHERE id <> 0')
    db.close_all()


@pytest.fixture(params=['sqlite', 'postgresql'])
def database_url(request, tmp_path):
    """An empty, migrated database of each kind."""
    if request.param == 'sqlite':
        url = 'sqlite:///%s' % (tmp_path / 'balance.db')
        db = open_database(url)
        migrate(db)
        return url
    url = request.getfixturevalue('postgres_url')
    _empty_postgres(url)
    return url


@pytest.fixture(scope='session')
def signing_key_file(tmp_path_factory):
    """An Ed25519 key that signs the test service's manifests."""
    from balance_api.exports import signing
    path = str(tmp_path_factory.mktemp('signing') / 'signing.pem')
    signing.create_key_file(path)
    return path


@pytest.fixture
def app(database_url, signing_key_file):
    application = create_app(Settings(database_url=database_url,
                                      signing_key_file=signing_key_file))
    yield application


@pytest.fixture
def admin_token(app):
    """The token of an admin key in the test database."""
    return create_key_in(database.obj, ADMIN_KEY_NAME, ['admin'])


@pytest.fixture
def client(app, admin_token):
    """The API in-process, every request sent with an admin key (tests of
    the keys themselves build clients of their own)."""
    return falcon.testing.TestClient(app, headers=bearer(admin_token))


@pytest.fixture
def anonymous(app):
    """The API in-process, with no key sent."""
    return falcon.testing.TestClient(app)


@pytest.fixture
def make_user(client):
    """Create a user through the API, optionally with money on it."""
    def make(uid, balance=None):
        result = client.simulate_post('/user', body='uid=%d' % uid, headers=FORM)
        assert result.status_code == 201, result.text
        if balance is not None:
            result = client.simulate_put('/balance/%d' % uid, headers=FORM,
                                         body='operation=add&balance=%s' % balance)
            assert result.status_code == 200, result.text
        return uid
    return make


@pytest.fixture
def server(database_url):
    """gunicorn with several workers, serving the test database over HTTP."""
    running = Server(database_url)
    yield running
    running.stop()


@pytest.fixture
def restartable_postgres_url(postgres_url):
    """The emptied test database on a local cluster this test may restart
    (the bank workloads); without the cluster or root: a skip, in CI a failure."""
    from bank import postgres_cluster
    if postgres_cluster(postgres_url) is None or os.geteuid() != 0:
        message = 'restarting PostgreSQL needs the local cluster (pg_ctlcluster) and root'
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    _empty_postgres(postgres_url)
    return postgres_url
