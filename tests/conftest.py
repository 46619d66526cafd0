"""Fixtures: every API test runs against SQLite and against PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (default: the local server,
postgresql://postgres@127.0.0.1:5432), which names the server, user and
password; the suite connects to the server's maintenance database,
``postgres`` (whatever database the URL names), creates a database of its
own there and drops it at the end. When no server answers, the PostgreSQL
half is skipped, unless BALANCE_API_REQUIRE_POSTGRES=1 (set by CI), which
makes it an error. Either way the summary says how many tests ran against
PostgreSQL.

Tests that restart the PostgreSQL server (the bank workloads) interrupt
everyone else using it, so they run only with
BALANCE_API_TEST_RESTART_POSTGRES=1 (set by CI) and are skipped otherwise.
"""
import os
import shutil
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

REQUIRE_POSTGRES = os.environ.get('BALANCE_API_REQUIRE_POSTGRES') == '1'


def nginx_binary():
    """nginx, for the tests that put it in front of the service: a skip without
    it, a failure in CI (where .ci/run installs it)."""
    found = shutil.which('nginx') or shutil.which('nginx', path='/usr/sbin:/usr/local/sbin')
    if found is None:
        if REQUIRE_POSTGRES:
            pytest.fail('nginx is required in CI but is not installed')
        pytest.skip('nginx is not installed')
    return found
RESTART_POSTGRES_VARIABLE = 'BALANCE_API_TEST_RESTART_POSTGRES'
# Every server has it, unlike a database named after the suite or its user.
MAINTENANCE_DATABASE = 'postgres'
FORM = {'Content-Type': 'application/x-www-form-urlencoded'}


def _with_database(url, name):
    return urlunparse(urlparse(url)._replace(path='/' + name))


def _shown(url):
    """The server of ``url`` as the summary names it: no password, no database."""
    parts = urlparse(url)
    netloc = parts.netloc.rpartition('@')[2]
    if parts.username:
        netloc = '%s@%s' % (parts.username, netloc)
    return urlunparse((parts.scheme, netloc, '', '', '', ''))


# The server's maintenance database: where the suite creates and drops its own.
PG_URL = _with_database(
    os.environ.get('TEST_DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432'),
    MAINTENANCE_DATABASE)
PG_SERVER = _shown(PG_URL)

# What the summary reports: whether the server answered, and which tests ran on it.
_SERVER_ANSWERED = pytest.StashKey()
_SERVER_UNREACHABLE = pytest.StashKey()
_USES_POSTGRES = pytest.StashKey()
_POSTGRES_TESTS_RAN = pytest.StashKey()


@pytest.fixture(scope='session')
def postgres_database(request):
    """A fresh, migrated PostgreSQL database for this test session (tests use
    ``postgres_url``, which also counts them)."""
    admin = open_database(PG_URL)
    try:
        admin.connect()
    except peewee.OperationalError as exc:
        request.config.stash[_SERVER_UNREACHABLE] = True
        if REQUIRE_POSTGRES:
            pytest.fail('PostgreSQL is required but unreachable at %s: %s' % (PG_SERVER, exc))
        pytest.skip('no PostgreSQL server answers at %s' % PG_SERVER)
    request.config.stash[_SERVER_ANSWERED] = True
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


@pytest.fixture
def postgres_url(request, postgres_database):
    """The session's PostgreSQL database; the test is counted as one that ran on it."""
    request.node.stash[_USES_POSTGRES] = True
    return postgres_database


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == 'call' and not report.skipped and item.stash.get(_USES_POSTGRES, False):
        # A set: a test's subtests (schemathesis) report on their own.
        item.config.stash.setdefault(_POSTGRES_TESTS_RAN, set()).add(item.nodeid)
    return report


def postgres_summary(config):
    """One line: how many tests ran against PostgreSQL, or why none did."""
    ran = len(config.stash.get(_POSTGRES_TESTS_RAN, ()))
    if config.stash.get(_SERVER_UNREACHABLE, False):
        if REQUIRE_POSTGRES:
            return ('PostgreSQL: 0 tests ran - no server at %s, the PostgreSQL half ERRORED '
                    '(BALANCE_API_REQUIRE_POSTGRES=1)' % PG_SERVER)
        return ('PostgreSQL: 0 tests ran - no server at %s, the PostgreSQL half was SKIPPED'
                % PG_SERVER)
    if not config.stash.get(_SERVER_ANSWERED, False):
        return 'PostgreSQL: 0 tests ran - no test that ran asked for it'
    line = 'PostgreSQL: %d %s ran against %s' % (ran, 'test' if ran == 1 else 'tests', PG_SERVER)
    if REQUIRE_POSTGRES:
        line += ' (BALANCE_API_REQUIRE_POSTGRES=1)'
    return line


def pytest_terminal_summary(terminalreporter, config):
    if config.option.collectonly:
        return
    missing = config.stash.get(_SERVER_UNREACHABLE, False)
    terminalreporter.write_sep('-', postgres_summary(config), green=not missing,
                               yellow=missing and not REQUIRE_POSTGRES,
                               red=missing and REQUIRE_POSTGRES, bold=True)


def _empty_postgres(url):
    db = open_database(url)
    with db.connection_context():
        db.execute_sql('TRUNCATE posting, journal_entry, idempotency_record, points_draw, '
                       'points_transaction, points_entry, points_balance, points_member, '
                       'points_club, api_key, discount_code, discount_audit, discount_brand '
                       'RESTART IDENTITY')
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


def postgres_restart_refusal():
    """Why this run may not restart the PostgreSQL server, or None.

    A restart cuts off every session on the server, other people's too, so
    it takes an explicit yes: CI (.ci/run) gives it; a shared development
    machine, by default, does not.
    """
    if os.environ.get(RESTART_POSTGRES_VARIABLE) != '1':
        return ('restarting PostgreSQL interrupts everyone using the server: '
                'set %s=1 to allow it (.ci/run does)' % RESTART_POSTGRES_VARIABLE)
    return None


@pytest.fixture
def bank_postgres(request):
    """``(database url, restarts)`` for a bank workload: one PostgreSQL restart
    where this run may restart the server (BALANCE_API_TEST_RESTART_POSTGRES=1,
    as in CI), none otherwise; the workload's other faults either way."""
    if postgres_restart_refusal() is None:
        return request.getfixturevalue('restartable_postgres_url'), 1
    postgres_url = request.getfixturevalue('postgres_url')
    _empty_postgres(postgres_url)
    return postgres_url, 0


@pytest.fixture
def restartable_postgres_url(request):
    """The emptied test database on a local cluster this test may restart
    (the bank workloads; ``bank_postgres`` asks for it only where restarts are
    allowed). Without BALANCE_API_TEST_RESTART_POSTGRES=1: a skip, before any
    database is touched; allowed but without the cluster or root: a skip. With
    BALANCE_API_REQUIRE_POSTGRES=1 (CI) either is a failure."""
    refusal = postgres_restart_refusal()
    if refusal is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(refusal)
        pytest.skip(refusal)
    postgres_url = request.getfixturevalue('postgres_url')
    from bank import postgres_cluster
    if postgres_cluster(postgres_url) is None or os.geteuid() != 0:
        message = 'restarting PostgreSQL needs the local cluster (pg_ctlcluster) and root'
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    _empty_postgres(postgres_url)
    return postgres_url
