"""The payer points API: grants per payer, corrections, spends oldest first, balances."""
import itertools
import json

import pytest

from helpers import FORM, assert_error, assert_ok, encode_form

GRANTS = [('DANNON', 300, '2022-10-31T10:00:00Z'), ('UNILEVER', 200, '2022-10-31T11:00:00Z'),
          ('DANNON', -200, '2022-10-31T15:00:00Z'), ('MILLER COORS', 10000, '2022-11-01T14:00:00Z'),
          ('DANNON', 1000, '2022-11-02T14:00:00Z')]
SPENT = [{'payer': 'DANNON', 'points': -100}, {'payer': 'UNILEVER', 'points': -200},
         {'payer': 'MILLER COORS', 'points': -4700}]
LEFT = {'DANNON': 1000, 'UNILEVER': 0, 'MILLER COORS': 5300}


def add(client, uid, payer, points, timestamp=None, headers=None):
    payload = {'payer': payer, 'points': points}
    if timestamp is not None:
        payload['timestamp'] = timestamp
    return client.simulate_post('/points/%d/add' % uid, json=payload, headers=headers)


def spend(client, uid, points, headers=None):
    return client.simulate_post('/points/%d/spend' % uid, json={'points': points},
                                headers=headers)


def balance(client, uid):
    return assert_ok(client.simulate_get('/points/%d/balance' % uid))


@pytest.fixture
def member(make_user):
    return make_user(1)


def test_the_worked_example(client, member):
    for payer, points, moment in GRANTS:
        assert assert_ok(add(client, member, payer, points, moment), 201) == {
            'payer': payer, 'points': points, 'timestamp': moment}
    assert assert_ok(spend(client, member, 5000)) == SPENT
    assert balance(client, member) == LEFT


def _orders_where_corrections_follow_their_grants():
    correction = GRANTS[2]
    for order in itertools.permutations(GRANTS):
        if order.index(correction) > order.index(GRANTS[0]):
            yield order


@pytest.mark.parametrize('order', list(_orders_where_corrections_follow_their_grants())[::7])
def test_any_arrival_order_gives_the_same_answers(client, member, order):
    for payer, points, moment in order:
        assert_ok(add(client, member, payer, points, moment), 201)
    assert assert_ok(spend(client, member, 5000)) == SPENT
    assert balance(client, member) == LEFT


def test_form_bodies_work_as_json_does(client, member):
    for payer, points, moment in GRANTS:
        answer = client.simulate_post('/points/1/add', headers=FORM, body=encode_form(
            {'payer': payer, 'points': str(points), 'timestamp': moment}))
        assert assert_ok(answer, 201)['points'] == points
    answer = client.simulate_post('/points/1/spend', headers=FORM, body='points=5000')
    assert assert_ok(answer) == SPENT


def test_times_with_an_offset_are_converted_and_without_one_read_as_utc(client, member):
    assert assert_ok(add(client, member, 'A', 5, '2022-10-31T12:00:00+02:00'), 201)[
        'timestamp'] == '2022-10-31T10:00:00Z'
    assert assert_ok(add(client, member, 'B', 5, '2022-10-31T09:00:00'), 201)[
        'timestamp'] == '2022-10-31T09:00:00Z'
    # B is older, so it goes first.
    assert assert_ok(spend(client, member, 6)) == [{'payer': 'B', 'points': -5},
                                                  {'payer': 'A', 'points': -1}]


def test_a_spend_larger_than_the_balance_is_refused_and_writes_nothing(client, member):
    assert_ok(add(client, member, 'DANNON', 100), 201)
    assert_error(spend(client, member, 101), 605)
    assert balance(client, member) == {'DANNON': 100}
    assert assert_ok(spend(client, member, 100)) == [{'payer': 'DANNON', 'points': -100}]


def test_a_correction_beyond_the_payers_points_is_refused(client, member):
    assert_ok(add(client, member, 'DANNON', 100, '2022-01-01T00:00:00Z'), 201)
    assert_ok(add(client, member, 'UNILEVER', 500, '2022-01-02T00:00:00Z'), 201)
    assert_error(add(client, member, 'DANNON', -101), 606)
    assert balance(client, member) == {'DANNON': 100, 'UNILEVER': 500}
    assert_ok(add(client, member, 'DANNON', -100), 201)
    assert balance(client, member) == {'DANNON': 0, 'UNILEVER': 500}


@pytest.mark.parametrize('payload, code', [
    ({'payer': 'X', 'points': '10'}, 601),
    ({'payer': 'X', 'points': 1.5}, 601),
    ({'payer': 'X', 'points': True}, 601),
    ({'payer': 'X', 'points': 0}, 601),
    ({'payer': 'X', 'points': 10 ** 15}, 601),
    ({'payer': 'X'}, 601),
    ({'payer': '', 'points': 5}, 602),
    ({'points': 5}, 602),
    ({'payer': 'X\n', 'points': 5}, 602),
    ({'payer': 'X', 'points': 5, 'timestamp': 'yesterday'}, 603),
    ({'payer': 'X', 'points': 5, 'timestamp': '2022-10-31'}, 603),
    ({'payer': 'NEVER', 'points': -5}, 607),
    ({'payer': 'X', 'points': 5, 'extra': 1}, 524),
])
def test_bad_additions_are_coded_and_change_nothing(client, member, payload, code):
    assert_ok(add(client, member, 'X', 7), 201)
    answer = client.simulate_post('/points/1/add', json=payload)
    assert_error(answer, code)
    assert balance(client, member) == {'X': 7}


def test_exponent_numbers_are_not_points(client, member):
    answer = client.simulate_post('/points/1/add', body='{"payer": "X", "points": 1e3}',
                                  headers={'Content-Type': 'application/json'})
    assert_error(answer, 601)


@pytest.mark.parametrize('points', [0, -1, '5', 2.5, None])
def test_bad_spends_are_coded(client, member, points):
    assert_ok(add(client, member, 'X', 7), 201)
    assert_error(client.simulate_post('/points/1/spend', json={'points': points}), 604)
    assert balance(client, member) == {'X': 7}


def test_an_unknown_member_is_509(client, member):
    assert_error(add(client, 2, 'X', 5), 509)
    assert_error(spend(client, 2, 5), 509)
    assert_error(client.simulate_get('/points/2/balance'), 509)
    assert_error(client.simulate_get('/points/0/balance'), 507)


def test_a_retried_spend_with_the_same_key_is_applied_once(client, member):
    assert_ok(add(client, member, 'X', 10), 201)
    first = spend(client, member, 4, headers={'Idempotency-Key': 'spend-1'})
    again = spend(client, member, 4, headers={'Idempotency-Key': 'spend-1'})
    assert assert_ok(again) == assert_ok(first)
    assert again.headers.get('Idempotent-Replayed') == 'true'
    assert balance(client, member) == {'X': 6}
    # A retried grant without a timestamp is dated as the first one was.
    granted = add(client, member, 'Y', 3, headers={'Idempotency-Key': 'grant-1'})
    assert add(client, member, 'Y', 3, headers={'Idempotency-Key': 'grant-1'}).json == granted.json
    assert balance(client, member) == {'X': 6, 'Y': 3}


def test_every_payer_ever_had_is_listed_even_at_zero(client, member):
    assert balance(client, member) == {}
    assert_ok(add(client, member, 'X', 10), 201)
    assert_ok(spend(client, member, 10), 200)
    assert balance(client, member) == {'X': 0}
    assert json.loads(client.simulate_get('/points/1/balance').text) == {'X': 0}
