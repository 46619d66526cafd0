"""The stored answers of Idempotency-Keys: each key keeps its own, and old
keys are pruned, never younger than 24 hours."""
import datetime
import subprocess
import sys

import pytest

from balance_api.web import idempotency
from balance_api.storage.db import database
from balance_api.clock import utc_now
from balance_api.web.idempotency import IdempotencyRecord
from conftest import ROOT
from helpers import add, assert_error, assert_ok, balance_of, sub

REPLAYED = 'Idempotent-Replayed'
HOUR = datetime.timedelta(hours=1)


def key(value):
    return {'Idempotency-Key': value}


@pytest.fixture
def user(make_user):
    make_user(1, '10')


def _age_keys(moments):
    """Set the keys' creation times: ``{key: datetime}``."""
    with database.connection_context():
        for name, moment in moments.items():
            assert IdempotencyRecord.update(created_at=moment).where(
                IdempotencyRecord.key == name).execute() == 1


def _stored_keys():
    with database.connection_context():
        return sorted(r.key for r in IdempotencyRecord.select(IdempotencyRecord.key))


def _prune_command(database_url, hours):
    return subprocess.run(
        [sys.executable, '-m', 'balance_api', 'prune-idempotency', '--older-than-hours', hours],
        cwd=ROOT, env={'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'},
        capture_output=True, text=True)


def test_each_key_replays_its_own_answer(client, user):
    first = add(client, 1, '5', headers=key('first'))
    refused = sub(client, 1, '100', headers=key('refused'))
    last = add(client, 1, '7', headers=key('last'))
    assert assert_ok(first) == {'user_id': 1, 'balance': '15.00'}
    assert_error(refused, 505)
    assert assert_ok(last) == {'user_id': 1, 'balance': '22.00'}

    for name, retry, original in (('first', lambda: add(client, 1, '5', headers=key('first')),
                                   first),
                                  ('refused', lambda: sub(client, 1, '100',
                                                          headers=key('refused')), refused),
                                  ('last', lambda: add(client, 1, '7', headers=key('last')),
                                   last)):
        replay = retry()
        assert (replay.status_code, replay.json) == (original.status_code, original.json), name
        assert replay.headers.get(REPLAYED) == 'true', name
    assert balance_of(client, 1) == '22.00'


def test_prune_command_forgets_only_keys_older_than_the_cut_off(client, user, database_url):
    for name in ('old', 'younger', 'fresh'):
        assert add(client, 1, '1', headers=key(name)).status_code == 200
    now = utc_now()
    _age_keys({'old': now - 50 * HOUR, 'younger': now - 47 * HOUR})

    pruned = _prune_command(database_url, '48')
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == ['removed 1 idempotency keys']
    assert _stored_keys() == ['fresh', 'younger']

    # A forgotten key is a new request again; a kept one still replays.
    assert add(client, 1, '1', headers=key('old')).headers.get(REPLAYED) is None
    assert add(client, 1, '1', headers=key('younger')).headers.get(REPLAYED) == 'true'
    assert balance_of(client, 1) == '14.00'


def test_prune_command_refuses_under_24_hours(client, user, database_url):
    assert add(client, 1, '1', headers=key('old')).status_code == 200
    _age_keys({'old': utc_now() - 1000 * HOUR})
    refused = _prune_command(database_url, '23.9')
    assert refused.returncode != 0
    assert 'from 24 to 87672' in refused.stderr
    assert _stored_keys() == ['old']


def test_prune_cut_off_is_exclusive_and_counts_what_it_removed(client, user):
    now = datetime.datetime(2030, 6, 1, 12, 0, 0)
    names = ['just-older', 'at-cut-off', 'younger', 'much-older']
    for name in names:
        assert add(client, 1, '1', headers=key(name)).status_code == 200
    cut_off = now - 48 * HOUR
    _age_keys({'just-older': cut_off - datetime.timedelta(microseconds=1),
               'at-cut-off': cut_off,
               'younger': now - 47 * HOUR,
               'much-older': now - 1000 * HOUR})
    with database.connection_context():
        removed = idempotency.prune(database.obj, 48 * HOUR, clock=lambda: now)
    assert removed == 2
    assert _stored_keys() == ['at-cut-off', 'younger']


def test_prune_keeps_keys_at_least_24_hours(client, user):
    now = datetime.datetime(2030, 6, 1, 12, 0, 0)
    assert add(client, 1, '1', headers=key('old')).status_code == 200
    _age_keys({'old': now - 1000 * HOUR})
    with database.connection_context():
        with pytest.raises(ValueError, match='^idempotency keys are kept at least 24 hours$'):
            idempotency.prune(database.obj, 24 * HOUR - datetime.timedelta(microseconds=1),
                              clock=lambda: now)
    assert _stored_keys() == ['old']
    with database.connection_context():
        assert idempotency.prune(database.obj, 24 * HOUR, clock=lambda: now) == 1
    assert _stored_keys() == []
