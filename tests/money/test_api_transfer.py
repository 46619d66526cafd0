"""PUT /transfer."""
import pytest

from helpers import (MAX_BALANCE, MAX_USER_ID, MD5_HEX,
                     assert_error, assert_ok, balance_of, history, send_form, send_json,
                     snapshot, transfer)


@pytest.fixture
def two_users(make_user):
    make_user(3)
    make_user(5, '100')
    return 5, 3


def test_transfer_answers_both_balances_ordered_by_user_id(client, two_users):
    result = transfer(client, 5, 3, '32.4')
    assert assert_ok(result) == [{'user_id': 3, 'balance': '32.40'},
                                 {'user_id': 5, 'balance': '67.60'}]
    result = transfer(client, 3, 5, '0.4')
    assert assert_ok(result) == [{'user_id': 3, 'balance': '32.00'},
                                 {'user_id': 5, 'balance': '68.00'}]
    assert balance_of(client, 3) == '32.00'
    assert balance_of(client, 5) == '68.00'


def test_transfer_is_one_history_row(client, two_users):
    before = history(client)
    transfer(client, 5, 3, '10', trans_desc='rent')
    rows = history(client)
    assert rows[:-1] == before
    row = rows[-1]
    assert (row['operation'], row['sender_id'], row['receiver_id'], row['sum'],
            row['transaction_description']) == ('balance_transfer', 5, 3, '10.00', 'rent')
    assert history(client, 'uid=5')[-1] == row
    assert history(client, 'uid=3')[-1] == row


def test_transfer_without_description_gets_a_unique_hash(client, two_users):
    for description in (None, '', None):
        assert transfer(client, 5, 3, '1', trans_desc=description).status_code == 200
    descriptions = [r['transaction_description'] for r in history(client)[-3:]]
    assert all(MD5_HEX.fullmatch(d) for d in descriptions)
    assert len(set(descriptions)) == 3


@pytest.mark.parametrize('description', ["'; DROP TABLE account; --", 'Überweisung ✓ 💸',
                                         'x' * 255])
def test_transfer_description_is_stored_verbatim(client, two_users, description):
    assert transfer(client, 5, 3, '1', trans_desc=description).status_code == 200
    assert history(client)[-1]['transaction_description'] == description
    assert [b['balance'] for b in assert_ok(client.simulate_get('/balance'))] == ['1.00', '99.00']


def test_transfer_accepts_json(client, two_users):
    result = send_json(client, 'PUT', '/transfer',
                       {'sender_id': 5, 'receiver_id': 3, 'balance': 10.10})
    assert assert_ok(result) == [{'user_id': 3, 'balance': '10.10'},
                                 {'user_id': 5, 'balance': '89.90'}]
    result = send_json(client, 'PUT', '/transfer',
                       '{"sender_id": 3, "receiver_id": 5, "balance": "0.1"}')
    assert assert_ok(result) == [{'user_id': 3, 'balance': '10.00'},
                                 {'user_id': 5, 'balance': '90.00'}]


def test_transfer_of_the_whole_balance(client, two_users):
    assert assert_ok(transfer(client, 5, 3, '100.00')) == [
        {'user_id': 3, 'balance': '100.00'}, {'user_id': 5, 'balance': '0.00'}]


def test_transfer_between_extreme_user_ids(client, make_user):
    make_user(1, '1')
    make_user(MAX_USER_ID)
    assert assert_ok(transfer(client, 1, MAX_USER_ID, '1')) == [
        {'user_id': 1, 'balance': '0.00'}, {'user_id': MAX_USER_ID, 'balance': '1.00'}]


@pytest.mark.parametrize('amount', ['100.01', '1000'])
def test_not_enough_money_is_505_and_changes_nothing(client, two_users, amount):
    before = snapshot()
    assert_error(transfer(client, 5, 3, amount), 505)
    assert_error(transfer(client, 3, 5, '0.01'), 505)
    assert snapshot() == before


def test_same_sender_and_receiver_is_513(client, two_users):
    before = snapshot()
    assert_error(transfer(client, 5, 5, '1'), 513)
    assert_error(send_json(client, 'PUT', '/transfer',
                           {'sender_id': 5, 'receiver_id': 5, 'balance': '1'}), 513)
    # A JSON string is no user id (once it was, and the same user as 5).
    assert_error(send_json(client, 'PUT', '/transfer',
                           {'sender_id': 5, 'receiver_id': '5', 'balance': '1'}), 507)
    assert snapshot() == before


def test_unknown_user_is_509_and_changes_nothing(client, two_users):
    before = snapshot()
    for sender, receiver in [(7, 3), (5, 7), (7, 8)]:
        assert_error(transfer(client, sender, receiver, '1'), 509)
    assert snapshot() == before


def test_transfer_to_a_deleted_user_is_509(client, two_users, make_user):
    make_user(7)
    assert client.simulate_delete('/balance_delete_user/7').status_code == 200
    before = snapshot()
    assert_error(transfer(client, 5, 7, '1'), 509)
    assert snapshot() == before


def test_receiver_overflow_is_525_and_changes_nothing(client, two_users, make_user):
    make_user(9, MAX_BALANCE)
    before = snapshot()
    assert_error(transfer(client, 5, 9, '0.01'), 525)
    assert snapshot() == before
    # The other way round is fine.
    assert assert_ok(transfer(client, 9, 5, '0.01'))[1] == {'user_id': 9,
                                                            'balance': '99999999999999999.98'}


def test_long_description_is_526(client, two_users):
    before = snapshot()
    assert_error(transfer(client, 5, 3, '1', trans_desc='x' * 256), 526)
    assert snapshot() == before


def test_unknown_field_is_524(client, two_users):
    before = snapshot()
    assert_error(send_form(client, 'PUT', '/transfer', {
        'sender_id': '5', 'receiver_id': '3', 'balance': '1', 'operation': 'add'}), 524)
    assert_error(send_json(client, 'PUT', '/transfer', {
        'sender_id': 5, 'receiver_id': 3, 'balance': '1', 'sender': 5}), 524)
    assert snapshot() == before


def test_empty_body_is_refused(client, two_users):
    before = snapshot()
    assert_error(client.simulate_put('/transfer', headers={'Content-Length': '0'}), 507)
    assert_error(send_json(client, 'PUT', '/transfer', {}), 507)
    assert snapshot() == before
