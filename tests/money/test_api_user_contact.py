"""PUT /user/{user_id}: changing a user's email and msisdn."""
import pytest

from helpers import assert_error, assert_ok, send_form, send_json, snapshot


def create(client, uid, **contact):
    assert_ok(send_form(client, 'POST', '/user', {'uid': uid, **contact}), 201)


def update(client, uid, fields, headers=None):
    return send_form(client, 'PUT', '/user/%s' % uid, fields, headers)


def test_contact_details_are_set_changed_and_kept(client):
    create(client, 1)
    assert assert_ok(update(client, 1, {'email': 'ann@example.com'})) == {
        'user_id': 1, 'email': 'ann@example.com', 'msisdn': None}
    assert assert_ok(send_json(client, 'PUT', '/user/1', {'msisdn': '+48123456789'})) == {
        'user_id': 1, 'email': 'ann@example.com', 'msisdn': '+48123456789'}
    assert assert_ok(update(client, 1, {})) == {
        'user_id': 1, 'email': 'ann@example.com', 'msisdn': '+48123456789'}
    # The v3 look-ups find the user by the new details.
    assert assert_ok(client.simulate_get(
        '/v3/shop/transactions/points/by_email/ann@example.com')) == {}


@pytest.mark.parametrize('cleared', [{'email': ''}, {'email': None}])
def test_an_empty_or_null_field_clears_it(client, cleared):
    create(client, 1, email='ann@example.com', msisdn='+48123456789')
    result = send_json(client, 'PUT', '/user/1', cleared)
    assert assert_ok(result) == {'user_id': 1, 'email': None, 'msisdn': '+48123456789'}
    # The address is free for another user.
    create(client, 2, email='ann@example.com')


def test_a_contact_taken_by_another_user_is_528_and_changes_nothing(client):
    create(client, 1, email='ann@example.com')
    create(client, 2, msisdn='+48123456789')
    before = snapshot()
    assert_error(update(client, 2, {'email': 'ann@example.com'}), 528)
    assert_error(update(client, 1, {'email': 'new@example.com', 'msisdn': '+48123456789'}), 528)
    assert snapshot() == before
    # A user's own detail is not taken.
    assert assert_ok(update(client, 1, {'email': 'ann@example.com'}))['email'] == (
        'ann@example.com')


@pytest.mark.parametrize('fields, code', [
    ({'email': 'not-an-address'}, 527), ({'msisdn': '12'}, 527), ({'msisdn': '+48 123'}, 527),
    ({'phone': '123456'}, 524)])
def test_bad_contact_details_are_coded(client, fields, code):
    create(client, 1)
    before = snapshot()
    assert_error(update(client, 1, fields), code)
    assert snapshot() == before


def test_unknown_and_malformed_users(client):
    assert_error(update(client, 7, {'email': 'ann@example.com'}), 509)
    assert_error(update(client, 0, {'email': 'ann@example.com'}), 507)
    create(client, 7)
    assert_ok(send_form(client, 'DELETE', '/balance_delete_user/7'))
    assert_error(update(client, 7, {'email': 'ann@example.com'}), 509)


def test_a_retried_update_with_the_same_key_is_applied_once(client):
    create(client, 1)
    create(client, 2)
    key = {'Idempotency-Key': 'contact-1'}
    first = update(client, 1, {'email': 'ann@example.com'}, key)
    # Meanwhile the address moves to another user; the retry changes nothing.
    assert_ok(update(client, 1, {'email': ''}))
    assert_ok(update(client, 2, {'email': 'ann@example.com'}))
    again = update(client, 1, {'email': 'ann@example.com'}, key)
    assert assert_ok(again) == assert_ok(first)
    assert again.headers.get('Idempotent-Replayed') == 'true'
    assert_error(update(client, 1, {'email': 'bob@example.com'}, key), 518)
