"""With several bad fields, the first in the endpoint's field order decides the
error code, whatever order the request lists them in."""
import pytest

from helpers import assert_error, send_form, send_json, snapshot

BAD_DESCRIPTION = 'x' * 256


@pytest.fixture
def users(make_user):
    make_user(1, '10')
    make_user(2)


def _both_orders(fields):
    """The fields as given and reversed: the request's own order must not matter."""
    return [list(fields.items()), list(reversed(list(fields.items())))]


def _as_json(pairs):
    """The fields as a JSON client sends them: a user id of digits as an integer."""
    return {name: int(value) if name in ('uid', 'sender_id', 'receiver_id') and value.isdigit()
            else value for name, value in pairs}


@pytest.mark.parametrize('fields, code', [
    ({'operation': 'foo', 'balance': 'abc', 'trans_desc': BAD_DESCRIPTION}, 504),
    ({'operation': 'foo', 'balance': 'abc'}, 504),
    ({'balance': 'abc', 'trans_desc': BAD_DESCRIPTION}, 504),  # operation missing
    ({'operation': 'add', 'balance': 'abc', 'trans_desc': BAD_DESCRIPTION}, 508),
    ({'operation': 'sub', 'trans_desc': BAD_DESCRIPTION}, 508),  # balance missing
    ({'operation': 'add', 'balance': '1', 'trans_desc': BAD_DESCRIPTION}, 526),
    ({'operation': 'foo', 'balance': '1', 'extra': '1'}, 504),
    ({'operation': 'add', 'balance': '1', 'extra': '1'}, 524),
], ids=['operation', 'operation before balance', 'missing operation', 'balance',
        'missing balance', 'trans_desc', 'known field before unknown', 'unknown field'])
def test_balance_change_first_bad_field_decides(client, users, fields, code):
    before = snapshot()
    for pairs in _both_orders(fields):
        assert_error(send_form(client, 'PUT', '/balance/1', pairs), code)
        assert_error(send_json(client, 'PUT', '/balance/1', _as_json(pairs)), code)
    assert snapshot() == before


@pytest.mark.parametrize('fields, code', [
    ({'sender_id': 'abc', 'receiver_id': 'abc', 'balance': 'abc',
      'trans_desc': BAD_DESCRIPTION}, 507),
    ({'sender_id': '1', 'receiver_id': '0', 'balance': 'abc', 'trans_desc': BAD_DESCRIPTION},
     507),
    ({'receiver_id': '2', 'balance': 'abc', 'trans_desc': BAD_DESCRIPTION}, 507),
    ({'sender_id': '1', 'balance': 'abc', 'trans_desc': BAD_DESCRIPTION}, 507),
    ({'sender_id': '1', 'receiver_id': '2', 'balance': '0', 'trans_desc': BAD_DESCRIPTION}, 508),
    ({'sender_id': '1', 'receiver_id': '2', 'trans_desc': BAD_DESCRIPTION}, 508),
    ({'sender_id': '1', 'receiver_id': '2', 'balance': '1', 'trans_desc': BAD_DESCRIPTION}, 526),
    # Format before the ledger's own rules: the same user twice, a missing user.
    ({'sender_id': '1', 'receiver_id': '1', 'balance': 'abc'}, 508),
    ({'sender_id': '1', 'receiver_id': '9', 'balance': '1', 'trans_desc': BAD_DESCRIPTION}, 526),
], ids=['sender_id', 'receiver_id', 'missing sender_id', 'missing receiver_id', 'balance',
        'missing balance', 'trans_desc', 'balance before same user',
        'trans_desc before missing user'])
def test_transfer_first_bad_field_decides(client, users, fields, code):
    before = snapshot()
    for pairs in _both_orders(fields):
        assert_error(send_form(client, 'PUT', '/transfer', pairs), code)
        assert_error(send_json(client, 'PUT', '/transfer', _as_json(pairs)), code)
    assert snapshot() == before


@pytest.mark.parametrize('fields, code', [
    ({'uid': 'abc', 'email': 'not an email', 'msisdn': 'abc'}, 507),
    ({'email': 'not an email'}, 507),  # uid missing
    ({'uid': '5', 'email': 'not an email', 'msisdn': '12'}, 527),
    ({'uid': '5', 'msisdn': '12', 'extra': '1'}, 527),
    ({'uid': 'abc', 'extra': '1'}, 507),
    ({'uid': 'abc', 'restore': 'maybe'}, 507),
    ({'uid': '5', 'msisdn': '12', 'restore': 'maybe'}, 527),
    ({'uid': '5', 'restore': 'maybe', 'extra': '1'}, 544),
], ids=['uid', 'missing uid', 'contact', 'contact before unknown field',
        'uid before unknown field', 'uid before restore', 'contact before restore',
        'restore before unknown field'])
def test_user_creation_first_bad_field_decides(client, users, fields, code):
    before = snapshot()
    for pairs in _both_orders(fields):
        assert_error(send_form(client, 'POST', '/user', pairs), code)
        assert_error(send_json(client, 'POST', '/user', _as_json(pairs)), code)
    assert snapshot() == before
