"""create-key, list-keys and revoke-key through the real command line, each
key then tried against the API on the same database."""
import datetime
import hashlib
import re
import socket
import subprocess
import sys
import time

import pytest

from balance_api.auth.keys import RECHECK_SECONDS
from balance_api.storage.db import is_postgres, open_database
from conftest import ROOT
from gunicorn_server import bearer
from helpers import DATE_FORMAT, assert_error, assert_ok

TOKEN_FORMAT = re.compile(r'[A-Za-z0-9_-]{43}')
READER = 'Balance:Api:Balance:Get'
HISTORY = 'Balance:Api:History:List'


def run(database_url, *arguments, extra_env=None, timeout=60):
    # A minimal environment: no BALANCE_API_AUTH or DATABASE_URL leaks in from the caller.
    env = {'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin', **(extra_env or {})}
    return subprocess.run([sys.executable, '-m', 'balance_api', *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def create_key(database_url, name, permits, *options):
    """Run create-key; returns the token from its last line of output."""
    result = run(database_url, 'create-key', '--name', name, '--permits', permits, *options)
    assert result.returncode == 0, result.stderr
    token = result.stdout.splitlines()[-1]
    assert TOKEN_FORMAT.fullmatch(token), result.stdout
    return token


def stored_keys(database_url):
    """Every row of api_key, each a dict of all its columns, by name."""
    db = open_database(database_url)
    try:
        with db.connection_context():
            cursor = db.execute_sql('SELECT * FROM api_key ORDER BY name')
            columns = [column[0] for column in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]
    finally:
        if is_postgres(db):
            db.close_all()


def assert_clean_refusal(result, message, returncode=None):
    """A refusal an operator can read: the reason on stderr, no traceback, no
    token. ``returncode`` None: any failure."""
    if returncode is None:
        assert result.returncode != 0, (result.stdout, result.stderr)
    else:
        assert result.returncode == returncode, (result.returncode, result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr, result.stderr
    assert result.stdout == ''


def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


# -- create-key ---------------------------------------------------------------------

def test_create_key_prints_its_token_as_the_last_line_and_the_token_works(
        database_url, make_user, anonymous):
    make_user(1)
    result = run(database_url, 'create-key', '--name', 'reader', '--permits', READER)
    assert result.returncode == 0, result.stderr
    token = result.stdout.splitlines()[-1]
    assert TOKEN_FORMAT.fullmatch(token), result.stdout
    # Shown once: nowhere else in the output, not in the log on stderr.
    assert result.stdout.count(token) == 1
    assert token not in result.stderr
    assert 'created key reader: permits %s' % READER in result.stdout

    assert assert_ok(anonymous.simulate_get('/balance/1', headers=bearer(token))) == {
        'user_id': 1, 'balance': '0.00'}
    assert assert_ok(anonymous.simulate_get(
        '/balance/1', headers={'X-Client-Authorization': token}))['user_id'] == 1
    # Its permit and no other: listing every balance needs Balance:Api:Balance:List.
    assert_error(anonymous.simulate_get('/balance', headers=bearer(token)), 706)


def test_the_token_is_stored_only_as_its_sha256(database_url):
    token = create_key(database_url, 'reader', READER)
    rows = stored_keys(database_url)
    assert [row['name'] for row in rows] == ['reader']
    for row in rows:
        for column, value in row.items():
            assert token not in str(value), column
    assert rows[0]['token_hash'] == hashlib.sha256(token.encode('ascii')).hexdigest()


def test_a_key_bound_to_a_user_acts_for_that_user_only(database_url, make_user, anonymous):
    make_user(1)
    make_user(2)
    token = create_key(database_url, 'user-one', READER, '--uid', '1')
    assert assert_ok(anonymous.simulate_get('/balance/1', headers=bearer(token)))['user_id'] == 1
    assert_error(anonymous.simulate_get('/balance/2', headers=bearer(token)), 707)
    assert stored_keys(database_url)[-1]['uid'] == 1


def test_a_taken_name_is_refused_in_one_line_and_the_first_key_stays(
        database_url, make_user, anonymous):
    make_user(1)
    first = create_key(database_url, 'reader', READER)
    again = run(database_url, 'create-key', '--name', 'reader', '--permits', 'admin')
    assert_clean_refusal(again, 'a key named reader exists already')
    # The line naming the database, then the refusal.
    assert again.stderr.startswith('balance_api: database ')
    assert len(again.stderr.strip().splitlines()) == 2, again.stderr
    keys = [row for row in stored_keys(database_url) if row['name'] == 'reader']
    assert [(row['permits'], row['token_hash']) for row in keys] == [
        (READER, hashlib.sha256(first.encode('ascii')).hexdigest())]
    assert_ok(anonymous.simulate_get('/balance/1', headers=bearer(first)))


@pytest.mark.parametrize('options, message', [
    (['--permits', 'Balance:Api:Balance:Steal'], 'unknown permit(s): Balance:Api:Balance:Steal'),
    (['--permits', '%s,root' % READER], 'unknown permit(s): root'),
    (['--permits', ' , '], 'at least one permit is needed'),
    (['--expires', '2024-13-01'], "a date is YYYY-MM-DD, not '2024-13-01'"),
    (['--expires', 'tomorrow'], "a date is YYYY-MM-DD, not 'tomorrow'"),
    (['--uid', '0'], 'a uid is a positive integer that fits 64 bits'),
    (['--uid=-1'], 'a uid is a positive integer that fits 64 bits'),
    (['--uid', 'abc'], 'a uid is a positive integer that fits 64 bits'),
    (['--uid', '9223372036854775808'], 'a uid is a positive integer that fits 64 bits'),
    (['--name', 'has space'], 'a key name is 1 to 64 of'),
    (['--name', 'x' * 65], 'a key name is 1 to 64 of'),
])
def test_bad_arguments_are_refused_before_anything_is_stored(database_url, options, message):
    # The last of a repeated option counts: each case spoils one of valid ones.
    result = run(database_url, 'create-key', '--name', 'spoiled', '--permits', READER, *options)
    assert_clean_refusal(result, message, returncode=2)
    assert stored_keys(database_url) == []


# -- list-keys ----------------------------------------------------------------------

def listed(output):
    """list-keys' table as a header and a dict of rows by name."""
    lines = output.splitlines()
    # Columns are at least two spaces apart; a timestamp holds one.
    split = [re.split(r' {2,}', line) for line in lines]
    header = split[0]
    return header, {cells[0]: dict(zip(header, cells)) for cells in split[1:]}


def test_list_keys_shows_every_key_and_never_a_token(database_url, make_user, anonymous):
    make_user(7)
    reader = create_key(database_url, 'reader', '%s,%s' % (READER, HISTORY),
                        '--uid', '7', '--expires', '2099-12-31')
    retired = create_key(database_url, 'retired', 'admin')
    assert_ok(anonymous.simulate_get('/balance/7', headers=bearer(reader)))
    assert run(database_url, 'revoke-key', 'retired').returncode == 0

    result = run(database_url, 'list-keys')
    assert result.returncode == 0, result.stderr
    header, rows = listed(result.stdout)
    assert header == ['name', 'permits', 'uid', 'created', 'expires', 'last used', 'revoked']
    # make_user's admin key is listed too.
    assert sorted(rows) == ['reader', 'retired', 'test-admin']
    assert list(rows) == sorted(rows)

    stored = {row['name']: row for row in stored_keys(database_url)}
    assert rows['reader']['permits'] == '%s,%s' % (READER, HISTORY)
    assert rows['reader']['uid'] == '7'
    assert rows['reader']['expires'] == '2099-12-31'
    assert rows['reader']['revoked'] == '-'
    assert DATE_FORMAT.fullmatch(rows['reader']['last used'])
    assert rows['reader']['created'] == str(stored['reader']['created_at'])[:19]
    assert rows['retired'] == {
        'name': 'retired', 'permits': 'admin', 'uid': '-',
        'created': str(stored['retired']['created_at'])[:19], 'expires': '-', 'last used': '-',
        'revoked': str(stored['retired']['revoked_at'])[:19]}
    assert DATE_FORMAT.fullmatch(rows['retired']['revoked'])

    for secret in (reader, retired, stored['reader']['token_hash'],
                   stored['retired']['token_hash']):
        assert secret not in result.stdout
        assert secret not in result.stderr
    assert not re.search(r'[A-Za-z0-9_-]{43}', result.stdout)


# -- revoke-key ---------------------------------------------------------------------

def test_a_revoked_key_is_refused_with_704(database_url, make_user, anonymous):
    make_user(1)
    token = create_key(database_url, 'reader', READER)
    assert_ok(anonymous.simulate_get('/balance/1', headers=bearer(token)))
    last_verified = time.monotonic()

    result = run(database_url, 'revoke-key', 'reader')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('revoked key reader')
    # The application may trust what it verified for RECHECK_SECONDS.
    time.sleep(max(0.0, last_verified + RECHECK_SECONDS + 0.05 - time.monotonic()))
    refused = anonymous.simulate_get('/balance/1', headers=bearer(token))
    assert_error(refused, 704)
    assert refused.headers['WWW-Authenticate'] == 'Bearer'


def test_revoking_twice_keeps_the_first_revocation(database_url):
    create_key(database_url, 'reader', READER)
    assert run(database_url, 'revoke-key', 'reader').returncode == 0
    first = stored_keys(database_url)[0]['revoked_at']
    assert first is not None
    again = run(database_url, 'revoke-key', 'reader')
    assert again.returncode == 0, again.stderr
    assert stored_keys(database_url)[0]['revoked_at'] == first


def test_revoking_an_unknown_key_fails_cleanly(database_url):
    create_key(database_url, 'reader', READER)
    result = run(database_url, 'revoke-key', 'ghost')
    assert_clean_refusal(result, 'no key is named ghost', returncode=1)
    assert result.stderr.startswith('balance_api: database ')
    assert len(result.stderr.strip().splitlines()) == 2, result.stderr
    assert stored_keys(database_url)[0]['revoked_at'] is None


# -- expiry -------------------------------------------------------------------------

def test_a_key_works_through_its_expiry_day_and_not_after(database_url, make_user, anonymous):
    make_user(1)
    today = utc_today()
    expired = create_key(database_url, 'expired', READER,
                         '--expires', (today - datetime.timedelta(days=1)).isoformat())
    last_day = create_key(database_url, 'last-day', READER, '--expires', today.isoformat())
    refused = anonymous.simulate_get('/balance/1', headers=bearer(expired))
    assert_error(refused, 705)
    assert refused.headers['WWW-Authenticate'] == 'Bearer'
    assert_ok(anonymous.simulate_get('/balance/1', headers=bearer(last_day)))


# -- the setting --------------------------------------------------------------------

def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize('arguments', [
    ['create-key', '--name', 'reader', '--permits', READER],
    ['list-keys'],
    ['serve', '--workers', '1'],
], ids=['create-key', 'list-keys', 'serve'])
def test_an_unknown_auth_setting_stops_every_command(database_url, arguments):
    if arguments[0] == 'serve':
        arguments = arguments + ['--port', str(_free_port())]
    # A serve that started anyway would run until the timeout.
    result = run(database_url, *arguments, extra_env={'BALANCE_API_AUTH': 'maybe'}, timeout=30)
    assert_clean_refusal(result, 'BALANCE_API_AUTH is "on" or "off", not \'maybe\'',
                         returncode=2)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert stored_keys(database_url) == []
