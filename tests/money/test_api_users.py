"""POST /user and DELETE /balance_delete_user/{id}."""
import pytest

from balance_api.money.verify import verify_ledger
from balance_api.storage.db import database
from helpers import (HISTORY_KEYS, MAX_USER_ID, MD5_HEX, add, assert_error,
                     assert_ok, balance_of, history, send_form, send_json, snapshot, sub,
                     transfer)


def create(client, uid, **contact):
    return send_form(client, 'POST', '/user', {'uid': uid, **contact})


# -- creating --------------------------------------------------------------

def test_create_user_answers_201_with_zero_balance(client):
    result = create(client, 15)
    assert assert_ok(result, 201) == {'user_id': 15, 'balance': '0.00'}
    assert assert_ok(client.simulate_get('/balance/15')) == {'user_id': 15, 'balance': '0.00'}


def test_create_user_writes_one_user_add_row(client):
    create(client, 15)
    rows = history(client)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == HISTORY_KEYS
    assert (row['operation'], row['sender_id'], row['receiver_id'], row['sum']) == (
        'user_add', 0, 15, '0.00')
    assert MD5_HEX.fullmatch(row['transaction_description'])


def test_create_user_accepts_json(client):
    result = send_json(client, 'POST', '/user', {'uid': 15})
    assert assert_ok(result, 201) == {'user_id': 15, 'balance': '0.00'}


@pytest.mark.parametrize('uid', ['"15"', '" 15"', '15.0', 'true', 'null', '[15]'])
def test_json_uid_that_is_no_json_integer_is_507(client, uid):
    # A form's values are text by nature; JSON has integers. (The string "15"
    # was accepted once: changed deliberately.)
    assert_error(send_json(client, 'POST', '/user', '{"uid": %s}' % uid), 507)
    assert_error(client.simulate_get('/balance/15'), 509)


def test_create_user_with_contact(client):
    result = create(client, 15, email='someone@example.com', msisdn='+49123456789')
    assert assert_ok(result, 201) == {'user_id': 15, 'balance': '0.00'}


def test_largest_signed_64_bit_user_id_is_valid(client):
    result = create(client, MAX_USER_ID)
    assert assert_ok(result, 201) == {'user_id': MAX_USER_ID, 'balance': '0.00'}
    assert balance_of(client, MAX_USER_ID) == '0.00'
    assert [row['receiver_id'] for row in history(client, 'uid=%d' % MAX_USER_ID)] == [MAX_USER_ID]


def test_existing_uid_is_returned_with_200_and_nothing_is_written(client, make_user):
    make_user(15, '3.50')
    before = snapshot()
    result = create(client, 15)
    assert assert_ok(result, 200) == {'user_id': 15, 'balance': '3.50'}
    assert snapshot() == before


def test_existing_uid_with_the_same_details_is_200_and_nothing_is_written(client):
    assert create(client, 15, email='ann@example.com', msisdn='+4912345678').status_code == 201
    before = snapshot()
    for contact in ({'email': 'ann@example.com', 'msisdn': '+4912345678'},
                    {'email': 'ann@example.com'}, {'msisdn': '+4912345678'},
                    # Left out or empty: not given, so not compared.
                    {}, {'email': '', 'msisdn': ''}):
        result = create(client, 15, **contact)
        assert assert_ok(result, 200) == {'user_id': 15, 'balance': '0.00'}, contact
        result = send_json(client, 'POST', '/user', {'uid': 15, **contact})
        assert assert_ok(result, 200) == {'user_id': 15, 'balance': '0.00'}, contact
    assert snapshot() == before


@pytest.mark.parametrize('contact', [
    {'email': 'new@example.com'}, {'msisdn': '+4900000000'},
    {'email': 'ann@example.com', 'msisdn': '+4900000000'},
    {'email': 'ANN@example.com'},
])
def test_existing_uid_with_other_details_is_542_and_changes_nothing(client, contact):
    # Once answered 200 with the new details silently dropped: changed deliberately.
    assert create(client, 15, email='ann@example.com', msisdn='+4912345678').status_code == 201
    assert create(client, 16).status_code == 201
    before = snapshot()
    assert_error(create(client, 15, **contact), 542)
    assert_error(send_json(client, 'POST', '/user', {'uid': 15, **contact}), 542)
    # A user without contacts has none to match.
    assert_error(create(client, 16, **contact), 542)
    assert snapshot() == before
    # Nothing was written, so a new address still belongs to nobody.
    assert create(client, 17, email='new@example.com').status_code == 201


def test_existing_uid_sent_as_json_is_returned_too(client, make_user):
    make_user(15, '1')
    result = send_json(client, 'POST', '/user', {'uid': 15})
    assert assert_ok(result, 200) == {'user_id': 15, 'balance': '1.00'}


def test_missing_uid_is_507(client):
    assert_error(send_form(client, 'POST', '/user', {'email': 'a@example.com'}), 507)
    assert_error(client.simulate_post('/user'), 507)
    assert history(client) == []


def test_unknown_field_is_524(client):
    for fields in [{'uid': '1', 'name': 'x'}, {'uid': '1', 'balance': '5'},
                   {'uid': '1', 'UID': '1'}]:
        assert_error(send_form(client, 'POST', '/user', fields), 524)
        assert_error(send_json(client, 'POST', '/user', {**fields, 'uid': 1}), 524)
    assert history(client) == []


@pytest.mark.parametrize('contact', [
    {'email': 'not-an-email'},
    {'email': 'a@'},
    {'email': 'a b@example.com'},
    {'email': 'a@example.com\n'},
    {'email': 'x' * 250 + '@example.com'},
    {'msisdn': '12345'},
    {'msisdn': '1234567890123456'},
    {'msisdn': '++1234567'},
    {'msisdn': '1234567+'},
    {'msisdn': '1234567\n'},
    {'msisdn': 'abc1234567'},
    {'msisdn': '\u0661\u0662\u0663\u0664\u0665\u0666'},
])
def test_malformed_contact_is_527(client, contact):
    before = snapshot()
    assert_error(create(client, 15, **contact), 527)
    assert snapshot() == before
    assert_error(client.simulate_get('/balance/15'), 509)


def test_msisdn_of_6_to_15_digits_is_accepted(client):
    for uid, msisdn in enumerate(['123456', '+123456', '123456789012345', '+123456789012345'], 1):
        assert create(client, uid, msisdn=msisdn).status_code == 201, msisdn


@pytest.mark.parametrize('contact', [{'email': 'taken@example.com'}, {'msisdn': '+4912345678'}])
def test_contact_of_another_user_is_528(client, contact):
    assert create(client, 1, **contact).status_code == 201
    before = snapshot()
    assert_error(create(client, 2, **contact), 528)
    assert snapshot() == before
    assert_error(client.simulate_get('/balance/2'), 509)


def test_empty_contact_means_none(client):
    assert create(client, 1, email='', msisdn='').status_code == 201
    assert create(client, 2, email='', msisdn='').status_code == 201


# -- deleting --------------------------------------------------------------

def delete(client, user_id, headers=None):
    return client.simulate_delete('/balance_delete_user/%s' % user_id, headers=headers)


def test_delete_user_with_zero_balance(client, make_user):
    make_user(15)
    make_user(16)
    result = delete(client, 15)
    assert assert_ok(result) == {'code': 0, 'message': 'User deleted'}
    assert_error(client.simulate_get('/balance/15'), 509)
    assert assert_ok(client.simulate_get('/balance')) == [{'user_id': 16, 'balance': '0.00'}]


def test_delete_writes_a_user_delete_row_and_keeps_history(client, make_user):
    make_user(15, '10')
    sub(client, 15, '10')
    delete(client, 15)
    rows = history(client, 'uid=15')
    assert [r['operation'] for r in rows] == [
        'user_add', 'balance_add', 'balance_sub', 'user_delete']
    last = rows[-1]
    assert (last['sender_id'], last['receiver_id'], last['sum']) == (15, 0, '0.00')
    assert MD5_HEX.fullmatch(last['transaction_description'])
    assert assert_ok(client.simulate_get('/history?uid=15')) == rows


def test_user_who_moved_all_money_away_can_be_deleted(client, make_user):
    make_user(15, '7.25')
    make_user(16)
    assert transfer(client, 15, 16, '7.25').status_code == 200
    assert delete(client, 15).status_code == 200
    assert balance_of(client, 16) == '7.25'


def test_delete_with_money_is_511_and_changes_nothing(client, make_user):
    make_user(15, '0.01')
    before = snapshot()
    assert_error(delete(client, 15), 511)
    assert snapshot() == before
    assert balance_of(client, 15) == '0.01'


def test_delete_unknown_user_is_509(client, make_user):
    make_user(1)
    before = snapshot()
    assert_error(delete(client, 2), 509)
    assert_error(delete(client, MAX_USER_ID), 509)
    assert snapshot() == before


def test_delete_twice_is_509(client, make_user):
    make_user(15)
    assert delete(client, 15).status_code == 200
    before = snapshot()
    assert_error(delete(client, 15), 509)
    assert snapshot() == before


def test_deleted_user_cannot_be_used(client, make_user):
    make_user(15)
    make_user(16, '5')
    delete(client, 15)
    before = snapshot()
    assert_error(add(client, 15, '1'), 509)
    assert_error(sub(client, 15, '1'), 509)
    assert_error(transfer(client, 16, 15, '1'), 509)
    assert_error(transfer(client, 15, 16, '1'), 509)
    assert snapshot() == before


# -- a deleted uid, and restoring it ------------------------------------------

@pytest.mark.parametrize('restore', [None, 'false'])
def test_deleted_uid_is_543_and_changes_nothing(client, make_user, restore):
    # Once a new user under the old id, merging two people's histories: changed
    # deliberately. The id stays the deleted person's.
    make_user(15, '4')
    sub(client, 15, '4')
    delete(client, 15)
    before = snapshot()
    given = {} if restore is None else {'restore': restore}
    assert_error(create(client, 15, **given), 543)
    assert_error(create(client, 15, email='new@example.com', **given), 543)
    assert_error(send_json(client, 'POST', '/user',
                           {'uid': 15, **({} if restore is None else {'restore': False})}), 543)
    assert snapshot() == before
    assert_error(client.simulate_get('/balance/15'), 509)


def test_restore_reopens_the_same_account_with_its_history(client, make_user):
    make_user(15, '4')
    sub(client, 15, '4')
    delete(client, 15)
    old_rows = history(client, 'uid=15')

    result = create(client, 15, restore='true')
    assert assert_ok(result, 201) == {'user_id': 15, 'balance': '0.00'}
    assert balance_of(client, 15) == '0.00'
    rows = history(client, 'uid=15')
    assert rows[:-1] == old_rows
    assert (rows[-1]['operation'], rows[-1]['sender_id'], rows[-1]['receiver_id']) == (
        'user_add', 0, 15)
    # Restored, it works like any user.
    assert assert_ok(add(client, 15, '2')) == {'user_id': 15, 'balance': '2.00'}


def test_restore_in_json_and_with_contacts(client):
    assert create(client, 15, email='ann@example.com').status_code == 201
    delete(client, 15)
    result = send_json(client, 'POST', '/user',
                       {'uid': 15, 'restore': True, 'msisdn': '+4912345678'})
    assert assert_ok(result, 201) == {'user_id': 15, 'balance': '0.00'}
    # Deleting cleared the contacts; restoring sets the ones given.
    assert assert_ok(send_json(client, 'PUT', '/user/15', {})) == {
        'user_id': 15, 'email': None, 'msisdn': '+4912345678'}


def test_restore_of_a_live_user_is_the_idempotent_create(client, make_user):
    assert create(client, 15, email='ann@example.com').status_code == 201
    add(client, 15, '3')
    before = snapshot()
    assert assert_ok(create(client, 15, restore='true'), 200) == {'user_id': 15, 'balance': '3.00'}
    assert_error(create(client, 15, restore='true', email='eve@example.com'), 542)
    assert snapshot() == before


def test_restore_of_a_uid_that_never_existed_is_509_and_writes_nothing(client, make_user):
    make_user(1)
    before = snapshot()
    assert_error(create(client, 15, restore='true'), 509)
    assert snapshot() == before


@pytest.mark.parametrize('restore', ['yes', '1', 'True', 'TRUE', 'on', '', 'true '])
def test_malformed_restore_in_a_form_is_544(client, make_user, restore):
    make_user(15)
    delete(client, 15)
    before = snapshot()
    assert_error(create(client, 15, restore=restore), 544)
    assert snapshot() == before


@pytest.mark.parametrize('restore', ['"true"', '1', '0', 'null', '[true]'])
def test_malformed_restore_in_json_is_544(client, make_user, restore):
    make_user(15)
    delete(client, 15)
    before = snapshot()
    assert_error(send_json(client, 'POST', '/user', '{"uid": 15, "restore": %s}' % restore), 544)
    assert snapshot() == before


def test_restore_false_is_the_same_request_as_none_to_an_idempotency_key(client):
    key = {'Idempotency-Key': 'create-15'}
    first = send_form(client, 'POST', '/user', {'uid': 15}, headers=key)
    assert assert_ok(first, 201) == {'user_id': 15, 'balance': '0.00'}
    again = send_form(client, 'POST', '/user', {'uid': 15, 'restore': 'false'}, headers=key)
    assert assert_ok(again, 201) == {'user_id': 15, 'balance': '0.00'}
    assert again.headers.get('Idempotent-Replayed') == 'true'


def test_restored_account_verifies(client, make_user):
    make_user(15, '4')
    make_user(16)
    transfer(client, 15, 16, '4')
    delete(client, 15)
    assert create(client, 15, restore='true').status_code == 201
    transfer(client, 16, 15, '1.50')
    sub(client, 16, '2.50')
    delete(client, 16)
    with database.obj.connection_context():
        report = verify_ledger(database.obj)
    assert report.ok, report.problems
    assert [r['operation'] for r in history(client, 'uid=15')] == [
        'user_add', 'balance_add', 'balance_transfer', 'user_delete', 'user_add',
        'balance_transfer']


def test_deleted_users_contact_is_free_again(client):
    assert create(client, 1, email='a@example.com', msisdn='1234567').status_code == 201
    assert delete(client, 1).status_code == 200
    assert create(client, 2, email='a@example.com', msisdn='1234567').status_code == 201


def test_restoring_with_a_taken_contact_is_528_and_stays_deleted(client):
    create(client, 1)
    delete(client, 1)
    create(client, 2, email='taken@example.com')
    before = snapshot()
    assert_error(create(client, 1, email='taken@example.com', restore='true'), 528)
    assert snapshot() == before
    assert_error(client.simulate_get('/balance/1'), 509)


@pytest.mark.parametrize('contact', [
    '"email": "\\ud800@example.com"',
    '"email": "a\\u0000@example.com"',
    '"email": 12',
    '"email": ["a@example.com"]',
    '"msisdn": "\\ud800123456"',
    '"msisdn": "123456\\u0000"',
])
def test_malformed_json_contact_is_527(client, contact):
    before = snapshot()
    assert_error(send_json(client, 'POST', '/user', '{"uid": 15, %s}' % contact), 527)
    assert snapshot() == before
