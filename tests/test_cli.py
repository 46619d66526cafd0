"""The command line as an operator meets it: run as ``python -m balance_api`` in a
directory of its own, with an explicit environment.

Every command names the database it uses, refuses one that is missing,
unreachable or not migrated with one line and exit status 3, refuses bad
arguments with one line and exit status 2, and never creates a database it
was only asked to use (``migrate`` and ``serve`` may create a SQLite file).
"""
import os
import re
import socket
import sqlite3

import pytest

from balance_api import __version__
from balance_api.cli import masked_url
from balance_api.storage.db import open_database
from scratch_databases import (assert_one_line_error, error_lines, exists, run_command,
                               scratch_database, sqlite_path)

# Each command that opens a database, with arguments it accepts.
DATABASE_COMMANDS = {
    'verify': ['verify'],
    'list-keys': ['list-keys'],
    'create-key': ['create-key', '--name', 'ops', '--permits', 'admin'],
    'revoke-key': ['revoke-key', 'ops'],
    'expire-points': ['expire-points'],
    'club-policy': ['club-policy', 'shop', 'fifo'],
    'prune-idempotency': ['prune-idempotency', '--older-than-hours', '48'],
    'checkpoint': ['checkpoint', '--file', 'checkpoints.jsonl'],
    'export': ['export', '--date-start', '2026-01-01', '--date-end', '2026-01-02',
               '--output', 'journal.csv'],
    'reconcile': ['reconcile', '--date-start', '2026-01-01', '--date-end', '2026-01-02'],
    'migrate --status': ['migrate', '--status'],
    'migrate --down-to': ['migrate', '--down-to', '0001_ledger', '--yes'],
    'backup': ['backup', 'copy.db'],
    'discounts-stats': ['discounts-stats'],
}
# Of those, the ones that also refuse a database at another schema version.
SCHEMA_CHECKED = ['verify', 'list-keys', 'create-key', 'revoke-key', 'expire-points',
                  'club-policy', 'prune-idempotency', 'checkpoint', 'export', 'reconcile',
                  'discounts-stats']
# The commands that may create a SQLite database.
CREATING_COMMANDS = {
    'migrate': ['migrate'],
    'serve': ['serve', '--workers', '1'],
}
# The commands that open no database (verify-export only with --against-ledger).
NO_DATABASE_COMMANDS = {'signing-key', 'verify-export', 'proxy-config'}


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _arguments(name, table):
    arguments = list(table[name])
    if arguments[0] == 'serve':
        # A serve that started anyway would hold the port until the timeout.
        arguments += ['--port', str(_free_port())]
    return arguments


@pytest.fixture
def env(signing_key_file):
    return {'SIGNING_KEY_FILE': signing_key_file}


@pytest.fixture
def migrated_sqlite(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'ledger.db')
    result = run_command(url, 'migrate', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return url


def _database_files(directory):
    return sorted(name for name in os.listdir(directory)
                  if name.startswith(('balance_api.db', 'missing.db')))


# -- versions ---------------------------------------------------------------------

def test_version_is_printed_and_is_the_package_version(tmp_path):
    result = run_command(None, '--version', cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, 'balance_api %s\n' % __version__)
    assert re.fullmatch(r'\d+\.\d+\.\d+', __version__)


# -- which database ------------------------------------------------------------------

def test_without_database_url_the_default_file_is_named_and_never_created(tmp_path):
    result = run_command(None, 'verify', cwd=tmp_path)
    assert_one_line_error(result, 3, 'does not exist', str(tmp_path / 'balance_api.db'))
    assert result.stderr.splitlines()[0] == (
        'balance_api: database sqlite:///%s (DATABASE_URL is not set: the default)'
        % (tmp_path / 'balance_api.db'))
    assert _database_files(tmp_path) == []


def test_every_database_command_names_its_database_first(migrated_sqlite, tmp_path, env):
    for name in ['verify', 'list-keys', 'prune-idempotency', 'migrate --status']:
        result = run_command(migrated_sqlite, *DATABASE_COMMANDS[name], cwd=tmp_path,
                             extra_env=env)
        assert result.returncode == 0, (name, result.stderr)
        assert result.stderr.splitlines()[0] == 'balance_api: database %s' % migrated_sqlite


def test_a_relative_sqlite_path_is_named_by_its_absolute_path(migrated_sqlite, tmp_path):
    result = run_command('sqlite:///ledger.db', 'verify', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == 'balance_api: database sqlite:///%s' % (
        tmp_path / 'ledger.db')


def test_commands_without_a_database_name_none(tmp_path):
    result = run_command(None, 'proxy-config', cwd=tmp_path)
    assert result.returncode == 0
    assert 'balance_api: database' not in result.stderr
    assert _database_files(tmp_path) == []


@pytest.mark.parametrize('url, shown', [
    ('postgresql://ops:s3cret@db.example:5432/ledger',
     'postgresql://ops:***@db.example:5432/ledger'),
    ('postgresql://ops:p%40ss@db.example/ledger', 'postgresql://ops:***@db.example/ledger'),
    ('postgresql://ops@db.example/ledger?password=s3cret&sslmode=require',
     'postgresql://ops@db.example/ledger?password=***&sslmode=require'),
    ('postgresql://ops@db.example/ledger', 'postgresql://ops@db.example/ledger'),
    ('sqlite:///ledger.db', 'sqlite:///ledger.db'),
])
def test_passwords_are_masked(url, shown):
    assert masked_url(url) == shown


# -- a database that is missing --------------------------------------------------------

@pytest.mark.parametrize('name', sorted(DATABASE_COMMANDS))
def test_a_missing_sqlite_file_is_refused_and_not_created(name, tmp_path, env):
    url = 'sqlite:///%s' % (tmp_path / 'missing.db')
    result = run_command(url, *_arguments(name, DATABASE_COMMANDS), cwd=tmp_path,
                         extra_env=env)
    assert_one_line_error(result, 3, '%s does not exist' % (tmp_path / 'missing.db'))
    assert result.stdout == ''
    assert os.listdir(tmp_path) == []


def test_verify_export_against_a_missing_ledger_is_refused(migrated_sqlite, tmp_path, env):
    exported = run_command(migrated_sqlite, 'export', '--date-start', '2026-01-01',
                           '--date-end', '2026-01-01', '--format', 'jsonl', '--output',
                           'journal.jsonl', cwd=tmp_path, extra_env=env)
    assert exported.returncode == 0, exported.stderr
    missing = 'sqlite:///%s' % (tmp_path / 'missing.db')
    offline = run_command(missing, 'verify-export', 'journal.jsonl', cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert 'balance_api: database' not in offline.stderr
    result = run_command(missing, 'verify-export', 'journal.jsonl', '--against-ledger',
                         cwd=tmp_path)
    assert_one_line_error(result, 3, 'does not exist')
    assert not os.path.exists(tmp_path / 'missing.db')


@pytest.mark.parametrize('name', sorted(CREATING_COMMANDS))
def test_a_sqlite_file_in_a_missing_directory_is_refused(name, tmp_path, env):
    url = 'sqlite:///%s' % (tmp_path / 'nowhere' / 'ledger.db')
    result = run_command(url, *_arguments(name, CREATING_COMMANDS), cwd=tmp_path,
                         extra_env=env)
    assert_one_line_error(result, 3, 'the directory %s does not exist' % (tmp_path / 'nowhere'))


def test_migrate_creates_a_new_sqlite_file(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'new.db')
    result = run_command(url, 'migrate', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('applied: 0001_ledger, ')
    assert exists(url)


def test_a_missing_postgresql_database_is_refused(postgres_url, tmp_path, env):
    url = re.sub(r'/[^/]*$', '/balance_api_no_such_database', postgres_url)
    for table, name in [(DATABASE_COMMANDS, 'verify'), (DATABASE_COMMANDS, 'create-key'),
                        (CREATING_COMMANDS, 'migrate'), (CREATING_COMMANDS, 'serve')]:
        result = run_command(url, *_arguments(name, table), cwd=tmp_path, extra_env=env)
        assert_one_line_error(result, 3, 'balance_api_no_such_database does not exist',
                              'createdb')


# -- a database that does not answer -----------------------------------------------

UNREACHABLE = 'postgresql://postgres:hunter2@127.0.0.1:1/ledger'


@pytest.mark.parametrize('name', sorted({**DATABASE_COMMANDS, **CREATING_COMMANDS}))
def test_an_unreachable_postgresql_is_one_line_without_its_password(name, tmp_path, env):
    table = CREATING_COMMANDS if name in CREATING_COMMANDS else DATABASE_COMMANDS
    result = run_command(UNREACHABLE, *_arguments(name, table), cwd=tmp_path, extra_env=env)
    assert 'hunter2' not in result.stderr + result.stdout
    if name == 'backup':
        # Never tried: PostgreSQL has its own backup tools.
        assert_one_line_error(result, 2, 'pg_dump', 'pg_basebackup')
        return
    assert result.stderr.splitlines()[0] == (
        'balance_api: database postgresql://postgres:***@127.0.0.1:1/ledger')
    assert_one_line_error(result, 3, 'cannot connect', 'port 1')
    assert result.stdout == ''
    assert os.listdir(tmp_path) == []


# -- a database that is not migrated, or migrated by a newer version ---------------------

@pytest.fixture(params=['sqlite', 'postgresql'])
def unmigrated_url(request, tmp_path):
    with scratch_database(request.param, request, tmp_path) as url:
        if url.startswith('sqlite'):
            # What verify used to leave behind: an empty file.
            open(sqlite_path(url), 'w').close()
        yield url


def _tables(url):
    db = open_database(url)
    try:
        with db.connection_context():
            return db.get_tables()
    finally:
        db.close_all() if hasattr(db, 'close_all') else db.close()


@pytest.mark.parametrize('name', SCHEMA_CHECKED)
def test_an_unmigrated_database_is_refused_and_left_alone(name, unmigrated_url, tmp_path, env):
    result = run_command(unmigrated_url, *DATABASE_COMMANDS[name], cwd=tmp_path,
                         extra_env=env)
    assert_one_line_error(result, 3, 'not migrated', 'it has no schema yet',
                          'python -m balance_api migrate')
    if unmigrated_url.startswith('sqlite'):
        assert os.path.getsize(sqlite_path(unmigrated_url)) == 0
    assert _tables(unmigrated_url) == []


def test_a_partly_migrated_database_names_the_pending_migrations(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'ledger.db')
    assert run_command(url, 'migrate', cwd=tmp_path).returncode == 0
    reverted = run_command(url, 'migrate', '--down-to', '0007_api_keys', '--yes', cwd=tmp_path)
    assert reverted.returncode == 0, reverted.stderr
    result = run_command(url, 'list-keys', cwd=tmp_path)
    assert_one_line_error(result, 3, 'pending migrations 0008_checkpoints, ')


def test_a_database_a_newer_version_migrated_is_refused(migrated_sqlite, tmp_path):
    with sqlite3.connect(sqlite_path(migrated_sqlite)) as connection:
        connection.execute("INSERT INTO schema_migration (name, applied) "
                           "VALUES ('9999_from_the_future', '2030-01-01 00:00:00')")
    for arguments in (['verify'], ['migrate']):
        result = run_command(migrated_sqlite, *arguments, cwd=tmp_path)
        assert_one_line_error(result, 3, 'does not ship (9999_from_the_future)')


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    (tmp_path / 'notes.db').write_text('not a database\n' * 100)
    result = run_command('sqlite:///%s' % (tmp_path / 'notes.db'), 'verify', cwd=tmp_path)
    assert_one_line_error(result, 3, 'not a database')


# -- bad arguments ------------------------------------------------------------------

@pytest.mark.parametrize('arguments, phrase', [
    ([], 'the following arguments are required: command'),
    (['no-such-command'], "invalid choice: 'no-such-command'"),
    (['migrate', '--status', '--down-to', '0001'], 'not allowed with argument --status'),
    (['migrate', '--yes'], '--yes confirms --down-to'),
    (['migrate', '--down-to', '0042_nothing', '--yes'], "no migration is named '0042_nothing'"),
    (['serve', '--port', 'http'], "a port is 1 to 65535, not 'http'"),
    (['serve', '--port', '70000'], "a port is 1 to 65535, not '70000'"),
    (['serve', '--workers', '-2'], "workers are a count (0: the default), not '-2'"),
    (['prune-idempotency', '--older-than-hours', '1'], "from 24 to 87672, not '1'"),
    (['prune-idempotency', '--older-than-hours', 'soon'], "not 'soon'"),
    (['prune-idempotency', '--older-than-hours', 'nan'], "not 'nan'"),
    (['prune-idempotency', '--older-than-hours', 'inf'], "not 'inf'"),
    (['create-key', '--name', 'x'], 'the following arguments are required: --permits'),
    (['revoke-key'], 'the following arguments are required: name'),
    (['club-policy', 'shop', 'lifo'], "argument policy: invalid choice: 'lifo'"),
    (['export', '--date-start', '2026-01-01'], 'required: --date-end'),
    (['export', '--date-start', 'May', '--date-end', '2026-01-01'], 'date format'),
    (['export', '--date-start', '2026-01-01', '--date-end', '2026-01-02', '--format', 'xml'],
     "invalid choice: 'xml'"),
    (['reconcile', '--date-start', '2026-02-01', '--date-end', '2026-01-01'],
     'date-start is after date-end'),
    (['proxy-config', '--listen', 'everywhere'], "an address is HOST:PORT, not 'everywhere'"),
    (['backup'], 'the following arguments are required: DEST'),
    (['discounts-stats', '--brand', '0'], 'a brand id is a positive integer'),
    (['verify', '--bogus'], 'unrecognized arguments: --bogus'),
])
def test_bad_arguments_are_one_line_and_exit_2(arguments, phrase, tmp_path, env):
    result = run_command('sqlite:///%s' % (tmp_path / 'missing.db'), *arguments, cwd=tmp_path,
                         extra_env=env)
    assert_one_line_error(result, 2, phrase)
    assert result.stdout == ''
    assert not os.path.exists(tmp_path / 'missing.db')


def test_a_bad_setting_is_one_line_and_exit_2(tmp_path):
    result = run_command('mysql://somewhere/ledger', 'verify', cwd=tmp_path)
    assert_one_line_error(result, 2, "unsupported DATABASE_URL scheme 'mysql'")
    result = run_command('sqlite:///x.db', 'verify', cwd=tmp_path,
                         extra_env={'DB_POOL_SIZE': 'many'})
    assert_one_line_error(result, 2, "'many'")


def test_prune_idempotency_takes_its_lowest_retention(migrated_sqlite, tmp_path):
    result = run_command(migrated_sqlite, 'prune-idempotency', '--older-than-hours', '24',
                         cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, 'removed 0 idempotency keys\n')


def test_every_command_is_covered_here(tmp_path):
    listed = run_command(None, '--help', cwd=tmp_path)
    choices = set(re.search(r'\{([a-z,-]+)\}', listed.stdout).group(1).split(','))
    covered = ({name.split()[0] for name in DATABASE_COMMANDS} | set(CREATING_COMMANDS)
               | NO_DATABASE_COMMANDS)
    # A command added since: at least it must neither crash nor create a database when
    # run bare against a missing one (the tables above say what each one must do).
    for name in sorted(choices - covered):
        url = 'sqlite:///%s' % (tmp_path / 'missing.db')
        result = run_command(url, name, cwd=tmp_path)
        assert result.returncode in (0, 1, 2, 3), (name, result.stderr)
        assert 'Traceback' not in result.stderr, (name, result.stderr)
        assert not os.path.exists(tmp_path / 'missing.db'), name
    assert covered <= choices


def test_commands_that_need_no_database_work_without_one(tmp_path, env):
    missing = 'sqlite:///%s' % (tmp_path / 'missing.db')
    made = run_command(missing, 'signing-key', '--out', 'key.pem', cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    again = run_command(missing, 'signing-key', '--out', 'key.pem', cwd=tmp_path)
    assert_one_line_error(again, 1, 'signing-key: key.pem exists')
    unreadable = run_command(missing, 'verify-export', 'none.csv', cwd=tmp_path)
    assert_one_line_error(unreadable, 1, 'verify-export: cannot read')
    assert error_lines(made) == []
    assert not os.path.exists(tmp_path / 'missing.db')
