"""GET /balance, GET /balance/{id} and PUT /balance/{id} (add and sub)."""
import pytest

from helpers import (BAD_AMOUNTS, MAX_BALANCE, MAX_USER_ID, MD5_HEX, add,
                     assert_error, assert_ok, balance_of, history, last_history_row,
                     send_form, send_json, snapshot, sub)


def change(client, user_id, fields):
    return send_form(client, 'PUT', '/balance/%s' % user_id, fields)


# -- reading ---------------------------------------------------------------

def test_balance_list_is_empty_without_users(client):
    assert assert_ok(client.simulate_get('/balance')) == []


def test_balance_list_is_ordered_by_user_id_and_skips_deleted(client, make_user):
    for uid in (10, 2, MAX_USER_ID, 1, 30):
        make_user(uid)
    add(client, 10, '32.4')
    add(client, 2, '0.01')
    assert client.simulate_delete('/balance_delete_user/30').status_code == 200
    assert assert_ok(client.simulate_get('/balance')) == [
        {'user_id': 1, 'balance': '0.00'},
        {'user_id': 2, 'balance': '0.01'},
        {'user_id': 10, 'balance': '32.40'},
        {'user_id': MAX_USER_ID, 'balance': '0.00'},
    ]


def test_one_balance(client, make_user):
    make_user(12, '32.4')
    assert assert_ok(client.simulate_get('/balance/12')) == {'user_id': 12, 'balance': '32.40'}


@pytest.mark.parametrize('user_id', ['13', str(MAX_USER_ID)])
def test_unknown_user_balance_is_509(client, make_user, user_id):
    make_user(12)
    assert_error(client.simulate_get('/balance/' + user_id), 509)


# -- add and sub -----------------------------------------------------------

GOOD_AMOUNTS = [
    ('32', '32.00'), ('32.4', '32.40'), ('32.40', '32.40'), ('0.01', '0.01'),
    ('0.1', '0.10'), ('1.04', '1.04'), (MAX_BALANCE, MAX_BALANCE),
    ('12345678901234567', '12345678901234567.00'),
]


def test_add_accepts_decimal_amounts(client, make_user):
    for user_id, (amount, shown) in enumerate(GOOD_AMOUNTS, 1):
        make_user(user_id)
        assert assert_ok(add(client, user_id, amount)) == {'user_id': user_id, 'balance': shown}
        assert balance_of(client, user_id) == shown
        assert last_history_row(client)['sum'] == shown


def test_add_and_sub_are_exact(client, make_user):
    make_user(12)
    for _ in range(10):
        add(client, 12, '0.1')
    assert balance_of(client, 12) == '1.00'
    assert assert_ok(sub(client, 12, '0.3')) == {'user_id': 12, 'balance': '0.70'}
    assert assert_ok(add(client, 12, '0.05')) == {'user_id': 12, 'balance': '0.75'}


def test_sub_down_to_zero(client, make_user):
    make_user(12, '5.25')
    assert assert_ok(sub(client, 12, '5.25')) == {'user_id': 12, 'balance': '0.00'}


def test_add_and_sub_write_one_row_each(client, make_user):
    make_user(12)
    add(client, 12, '32.4', trans_desc='salary')
    sub(client, 12, '2')
    rows = history(client)
    assert [(r['operation'], r['sender_id'], r['receiver_id'], r['sum']) for r in rows] == [
        ('user_add', 0, 12, '0.00'),
        ('balance_add', 0, 12, '32.40'),
        ('balance_sub', 0, 12, '2.00'),
    ]
    assert rows[1]['transaction_description'] == 'salary'


def test_sub_more_than_the_balance_is_505_and_changes_nothing(client, make_user):
    make_user(12)
    make_user(13, '5')
    before = snapshot()
    assert_error(sub(client, 12, '0.01'), 505)
    assert_error(sub(client, 13, '5.01'), 505)
    assert_error(sub(client, 13, '100'), 505)
    assert snapshot() == before


def test_add_to_unknown_user_is_509(client, make_user):
    make_user(12)
    before = snapshot()
    assert_error(add(client, 13, '1'), 509)
    assert_error(sub(client, 13, '1'), 509)
    assert snapshot() == before


@pytest.mark.parametrize('operation', ['ADD', 'mul', '', ' add', 'add\n', None, 1, ['add']])
def test_unknown_operation_is_504_and_changes_nothing(client, make_user, operation):
    make_user(12, '5')
    before = snapshot()
    fields = {'balance': '1'}
    if operation is not None:
        fields['operation'] = operation
    if isinstance(operation, str) or operation is None:
        assert_error(change(client, 12, fields), 504)
    assert_error(send_json(client, 'PUT', '/balance/12', fields), 504)
    assert snapshot() == before


@pytest.mark.parametrize('amount', BAD_AMOUNTS + [None])
def test_malformed_amount_is_508_and_changes_nothing(client, make_user, amount):
    make_user(12, '5')
    make_user(13)
    before = snapshot()
    given = {} if amount is None else {'balance': amount}
    for operation in ('add', 'sub'):
        assert_error(change(client, 12, {'operation': operation, **given}), 508)
    assert_error(send_form(client, 'PUT', '/transfer',
                           {'sender_id': '12', 'receiver_id': '13', **given}), 508)
    assert snapshot() == before


@pytest.mark.parametrize('amount', ['05.00', '007', '00.50', '00', '01234567890123456'])
def test_amount_with_a_leading_zero_is_508_in_forms_and_json_alike(client, make_user, amount):
    # One amount has one spelling; JSON's own numbers cannot start with a zero at all.
    make_user(12, '5')
    make_user(13)
    before = snapshot()
    assert_error(change(client, 12, {'operation': 'add', 'balance': amount}), 508)
    assert_error(send_json(client, 'PUT', '/balance/12',
                           {'operation': 'add', 'balance': amount}), 508)
    assert_error(send_json(client, 'PUT', '/transfer',
                           {'sender_id': 12, 'receiver_id': 13, 'balance': amount}), 508)
    assert snapshot() == before


def test_an_amount_below_one_keeps_its_single_zero(client, make_user):
    make_user(12)
    assert assert_ok(change(client, 12, {'operation': 'add', 'balance': '0.50'})) == {
        'user_id': 12, 'balance': '0.50'}
    assert assert_ok(send_json(client, 'PUT', '/balance/12',
                               {'operation': 'add', 'balance': '0.05'})) == {
        'user_id': 12, 'balance': '0.55'}
    assert assert_ok(send_json(client, 'PUT', '/balance/12',
                               '{"operation": "add", "balance": 0.45}')) == {
        'user_id': 12, 'balance': '1.00'}


# -- JSON bodies -----------------------------------------------------------

JSON_AMOUNTS = [
    ('10.10', '10.10'), ('0.1', '0.10'), ('5', '5.00'), ('"32.4"', '32.40'),
    # A float would turn this into 100000000000000000.
    ('99999999999999999.99', MAX_BALANCE),
    ('12345678901234567.89', '12345678901234567.89'),
]


def test_json_numbers_are_exact(client, make_user):
    for user_id, (amount, shown) in enumerate(JSON_AMOUNTS, 1):
        make_user(user_id)
        body = '{"operation": "add", "balance": %s}' % amount
        assert assert_ok(send_json(client, 'PUT', '/balance/%d' % user_id, body)) == {
            'user_id': user_id, 'balance': shown}, amount
        assert last_history_row(client)['sum'] == shown


@pytest.mark.parametrize('amount', [
    '0', '-1', '1.001', '100000000000000000', '1e3', 'true', 'null', '0.30000000000000004',
])
def test_malformed_json_amount_is_508(client, make_user, amount):
    make_user(12, '5')
    make_user(13)
    before = snapshot()
    for operation in ('add', 'sub'):
        body = '{"operation": "%s", "balance": %s}' % (operation, amount)
        assert_error(send_json(client, 'PUT', '/balance/12', body), 508)
    body = '{"sender_id": 12, "receiver_id": 13, "balance": %s}' % amount
    assert_error(send_json(client, 'PUT', '/transfer', body), 508)
    assert snapshot() == before


def test_json_with_charset_parameter_is_accepted(client, make_user):
    make_user(12)
    result = client.simulate_put('/balance/12', body='{"operation": "add", "balance": "1"}',
                                 headers={'Content-Type': 'application/json; charset=utf-8'})
    assert assert_ok(result) == {'user_id': 12, 'balance': '1.00'}


def test_form_with_charset_parameter_is_accepted(client, make_user):
    make_user(12)
    result = client.simulate_put(
        '/balance/12', body='operation=add&balance=1',
        headers={'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8'})
    assert assert_ok(result) == {'user_id': 12, 'balance': '1.00'}


# -- overflow --------------------------------------------------------------

def test_balance_overflow_is_525_and_changes_nothing(client, make_user):
    make_user(12, MAX_BALANCE)
    before = snapshot()
    assert_error(add(client, 12, '0.01'), 525)
    assert snapshot() == before
    assert balance_of(client, 12) == MAX_BALANCE
    # Taking money away still works, and then there is room again.
    assert assert_ok(sub(client, 12, '0.01'))['balance'] == '99999999999999999.98'
    assert assert_ok(add(client, 12, '0.01'))['balance'] == MAX_BALANCE


def test_two_large_deposits_overflow(client, make_user):
    make_user(12, '50000000000000000')
    before = snapshot()
    assert_error(add(client, 12, '50000000000000000'), 525)
    assert snapshot() == before


# -- trans_desc ------------------------------------------------------------

@pytest.mark.parametrize('description', [
    "'; DROP TABLE account; --",
    'Zahlung für Miete – März ✓',
    '转账 🚀',
    'a&b=c+d%20e?f#g',
    'line\nbreak\ttab',
    'x' * 255,
    '\U0001f600' * 255,
])
def test_given_description_is_stored_verbatim(client, make_user, description):
    make_user(12)
    assert add(client, 12, '1', trans_desc=description).status_code == 200
    assert last_history_row(client)['transaction_description'] == description
    result = send_json(client, 'PUT', '/balance/12',
                       {'operation': 'sub', 'balance': '1', 'trans_desc': description})
    assert result.status_code == 200
    assert last_history_row(client)['transaction_description'] == description
    # The tables are all still there.
    assert balance_of(client, 12) == '0.00'


@pytest.mark.parametrize('description', ['x' * 256, '\u00e9' * 256, 'a\x00b'])
def test_bad_description_is_526_and_changes_nothing(client, make_user, description):
    make_user(12, '5')
    before = snapshot()
    assert_error(add(client, 12, '1', trans_desc=description), 526)
    assert_error(send_json(client, 'PUT', '/balance/12',
                           {'operation': 'add', 'balance': '1', 'trans_desc': description}), 526)
    assert snapshot() == before


@pytest.mark.parametrize('description', ['12', 'true', '"\\ud800"', '"a\\u0000b"'])
def test_non_text_json_description_is_526(client, make_user, description):
    make_user(12, '5')
    before = snapshot()
    body = '{"operation": "add", "balance": "1", "trans_desc": %s}' % description
    assert_error(send_json(client, 'PUT', '/balance/12', body), 526)
    assert snapshot() == before


def test_missing_or_empty_description_is_a_unique_hash(client, make_user):
    make_user(12)
    for _ in range(3):
        assert add(client, 12, '1').status_code == 200
        assert add(client, 12, '1', trans_desc='').status_code == 200
        result = send_json(client, 'PUT', '/balance/12',
                           {'operation': 'add', 'balance': '1', 'trans_desc': None})
        assert result.status_code == 200
    descriptions = [row['transaction_description'] for row in history(client)]
    assert len(descriptions) == 10
    assert all(MD5_HEX.fullmatch(d) for d in descriptions), descriptions
    assert len(set(descriptions)) == len(descriptions)


def test_unknown_field_is_524(client, make_user):
    make_user(12)
    before = snapshot()
    assert_error(change(client, 12, {'operation': 'add', 'balance': '1', 'user_id': '12'}), 524)
    assert_error(send_json(client, 'PUT', '/balance/12',
                           {'operation': 'add', 'balance': '1', 'desc': 'x'}), 524)
    assert snapshot() == before
