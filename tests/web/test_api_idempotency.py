"""Idempotency-Key: a retried mutating request is answered once and executed once."""
import peewee
import pytest

from balance_api.money.models import JournalEntry
from helpers import (add, assert_error, assert_ok, balance_of, failing_write, history, send_form,
                     send_json, snapshot, sub, transfer)

REPLAYED = 'Idempotent-Replayed'


def key(value='retry-1'):
    return {'Idempotency-Key': value}


def assert_replay(result, first):
    assert (result.status_code, result.json) == (first.status_code, first.json)
    assert result.headers.get(REPLAYED) == 'true'


@pytest.fixture
def users(make_user):
    make_user(1, '10')
    make_user(2)


def test_retried_add_is_executed_once(client, users):
    first = add(client, 1, '5', headers=key())
    assert assert_ok(first) == {'user_id': 1, 'balance': '15.00'}
    assert REPLAYED not in first.headers
    after_first = snapshot()
    for _ in range(2):
        assert_replay(add(client, 1, '5', headers=key()), first)
    assert snapshot() == after_first
    assert balance_of(client, 1) == '15.00'


def test_retry_with_the_same_input_in_another_encoding_is_a_replay(client, users):
    first = add(client, 1, '5', headers=key())
    after_first = snapshot()
    assert_replay(send_json(client, 'PUT', '/balance/1', {'operation': 'add', 'balance': 5},
                            headers=key()), first)
    assert_replay(send_json(client, 'PUT', '/balance/1',
                            {'operation': 'add', 'balance': '5.00'}, headers=key()), first)
    assert snapshot() == after_first


def test_retried_transfer_is_executed_once(client, users):
    first = transfer(client, 1, 2, '2.5', trans_desc='gift', headers=key())
    assert assert_ok(first) == [{'user_id': 1, 'balance': '7.50'},
                                {'user_id': 2, 'balance': '2.50'}]
    after_first = snapshot()
    assert_replay(transfer(client, 1, 2, '2.5', trans_desc='gift', headers=key()), first)
    assert snapshot() == after_first
    assert [r['operation'] for r in history(client)].count('balance_transfer') == 1


def test_retried_user_creation_replays_201(client):
    first = send_form(client, 'POST', '/user', {'uid': '7'}, headers=key())
    assert assert_ok(first, 201) == {'user_id': 7, 'balance': '0.00'}
    after_first = snapshot()
    assert_replay(send_form(client, 'POST', '/user', {'uid': '7'}, headers=key()), first)
    assert snapshot() == after_first
    # Without the key the same request is a new one: the user exists now.
    assert send_form(client, 'POST', '/user', {'uid': '7'}).status_code == 200


def test_retried_delete_is_executed_once(client, make_user):
    make_user(3)
    first = client.simulate_delete('/balance_delete_user/3', headers=key())
    assert assert_ok(first) == {'code': 0, 'message': 'User deleted'}
    after_first = snapshot()
    assert_replay(client.simulate_delete('/balance_delete_user/3', headers=key()), first)
    assert snapshot() == after_first
    # Restored, the user is not deleted again by a late retry.
    assert send_form(client, 'POST', '/user', {'uid': '3', 'restore': 'true'}).status_code == 201
    assert_replay(client.simulate_delete('/balance_delete_user/3', headers=key()), first)
    assert balance_of(client, 3) == '0.00'


def test_key_reused_for_a_different_request_is_518(client, users):
    add(client, 1, '5', headers=key())
    before = snapshot()
    different = [
        lambda: add(client, 1, '6', headers=key()),
        lambda: add(client, 1, '5', trans_desc='other', headers=key()),
        lambda: sub(client, 1, '5', headers=key()),
        lambda: add(client, 2, '5', headers=key()),
        lambda: transfer(client, 1, 2, '5', headers=key()),
        lambda: send_form(client, 'POST', '/user', {'uid': '1'}, headers=key()),
        lambda: client.simulate_delete('/balance_delete_user/2', headers=key()),
    ]
    for request in different:
        assert_error(request(), 518)
    assert snapshot() == before
    # The original request can still be retried.
    assert add(client, 1, '5', headers=key()).headers.get(REPLAYED) == 'true'


def test_refusal_is_replayed_even_after_money_arrives(client, users):
    first = sub(client, 2, '5', headers=key())
    assert_error(first, 505)
    add(client, 2, '10')
    before = snapshot()
    retried = sub(client, 2, '5', headers=key())
    assert_error(retried, 505)
    assert retried.headers.get(REPLAYED) == 'true'
    assert snapshot() == before
    # The same request under a new key is a new request.
    assert assert_ok(sub(client, 2, '5', headers=key('retry-2')))['balance'] == '5.00'


def test_refused_transfer_to_a_missing_user_stays_refused(client, users, make_user):
    assert_error(transfer(client, 1, 9, '1', headers=key()), 509)
    make_user(9)
    before = snapshot()
    assert_error(transfer(client, 1, 9, '1', headers=key()), 509)
    assert snapshot() == before


@pytest.mark.parametrize('exception, code', [(peewee.DatabaseError, 512),
                                             (peewee.OperationalError, 531)])
def test_failed_request_is_not_stored_and_can_be_retried(client, users, monkeypatch,
                                                         exception, code):
    before = snapshot()
    with failing_write(monkeypatch, JournalEntry, 'insert', exception):
        assert_error(transfer(client, 1, 2, '3', headers=key()), code)
    assert snapshot() == before
    retried = transfer(client, 1, 2, '3', headers=key())
    assert assert_ok(retried) == [{'user_id': 1, 'balance': '7.00'},
                                  {'user_id': 2, 'balance': '3.00'}]
    assert REPLAYED not in retried.headers
    assert_replay(transfer(client, 1, 2, '3', headers=key()), retried)
    assert balance_of(client, 1) == '7.00'


def test_different_keys_are_different_requests(client, users):
    add(client, 1, '5', headers=key('a'))
    add(client, 1, '5', headers=key('b'))
    add(client, 1, '5')
    add(client, 1, '5')
    assert balance_of(client, 1) == '30.00'


def test_visible_ascii_keys_up_to_255_characters_are_accepted(client, users):
    for count, value in enumerate(['k' * 255, '!', '~', 'a-b_c.d:e/f@g+h=i', '"quoted"'], 1):
        first = add(client, 1, '1', headers=key(value))
        assert assert_ok(first) == {'user_id': 1, 'balance': '%d.00' % (10 + count)}, value
        assert_replay(add(client, 1, '1', headers=key(value)), first)


@pytest.mark.parametrize('value', ['k' * 256, 'with space', 'cl\u00e9', 'tab\there', '',
                                   'k\x7f', 'a,b', ','])
def test_malformed_key_is_519_and_changes_nothing(client, users, value):
    before = snapshot()
    assert_error(add(client, 1, '1', headers=key(value)), 519)
    assert_error(transfer(client, 1, 2, '1', headers=key(value)), 519)
    assert_error(send_form(client, 'POST', '/user', {'uid': '5'}, headers=key(value)), 519)
    assert_error(client.simulate_delete('/balance_delete_user/2', headers=key(value)), 519)
    assert snapshot() == before


def test_empty_description_is_a_missing_one(client, users):
    first = add(client, 1, '5', headers=key())
    assert_replay(add(client, 1, '5', trans_desc='', headers=key()), first)
    assert_replay(send_json(client, 'PUT', '/balance/1',
                            {'operation': 'add', 'balance': '5', 'trans_desc': ''},
                            headers=key()), first)
    moved = transfer(client, 1, 2, '1', trans_desc='', headers=key('retry-2'))
    assert_replay(transfer(client, 1, 2, '1', headers=key('retry-2')), moved)
    assert balance_of(client, 1) == '14.00'


def test_another_spelling_of_the_same_path_is_a_replay(client, users, make_user):
    first = add(client, 1, '5', headers=key())
    after_first = snapshot()
    assert_replay(send_form(client, 'PUT', '//balance/1', {'operation': 'add', 'balance': '5'},
                            headers=key()), first)
    assert snapshot() == after_first
    make_user(3)
    deleted = client.simulate_delete('//balance_delete_user/3', headers=key('retry-2'))
    assert assert_ok(deleted) == {'code': 0, 'message': 'User deleted'}
    assert_replay(client.simulate_delete('/balance_delete_user/3', headers=key('retry-2')),
                  deleted)
    # Another resource on the same route is another request.
    assert_error(add(client, 2, '5', headers=key()), 518)


def test_two_idempotency_keys_in_one_request_are_519(client, anonymous, admin_token, users):
    before = snapshot()
    # A list keeps both fields (the default headers of a client would merge them).
    headers = [('Content-Type', 'application/x-www-form-urlencoded'),
               ('Authorization', 'Bearer ' + admin_token),
               ('Idempotency-Key', 'retry-1'), ('Idempotency-Key', 'retry-2')]
    for _ in range(2):
        result = anonymous.simulate_put('/balance/1', body='operation=add&balance=5',
                                     headers=headers)
        assert_error(result, 519)
    assert snapshot() == before
    # Neither key was claimed.
    for value in ('retry-1', 'retry-2'):
        assert REPLAYED not in add(client, 1, '1', headers=key(value)).headers


def _store_as_the_previous_release_did(key_value, path, payload):
    """Rewrite a stored key's fingerprint the way releases before 2026-12 computed it."""
    import hashlib
    import json

    from balance_api.storage.db import database
    from balance_api.web.idempotency import IdempotencyRecord
    canonical = json.dumps(['PUT', path, payload], sort_keys=True, default=str,
                           separators=(',', ':'))
    with database.connection_context():
        IdempotencyRecord.update(fingerprint=hashlib.sha256(canonical.encode()).hexdigest()).where(
            IdempotencyRecord.key == key_value).execute()


def test_a_retry_that_spans_the_upgrade_is_a_replay(client, users):
    first = add(client, 1, '5', trans_desc='', headers=key())
    _store_as_the_previous_release_did(
        'retry-1', '/balance/1', {'operation': 'add', 'balance': '5.00', 'trans_desc': ''})
    assert_replay(add(client, 1, '5', trans_desc='', headers=key()), first)
    assert_replay(add(client, 1, '5', headers=key()), first)
    # Still a different request is still refused.
    assert_error(add(client, 1, '6', headers=key()), 518)
    assert balance_of(client, 1) == '15.00'
