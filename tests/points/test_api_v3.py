"""The loyalty clubs' v3 API: batches with a status per item, look-ups, events."""
import json

import pytest

from balance_api.config import Settings
from balance_api.points.models import PointsBalance, PointsEntry, PointsTransaction
from balance_api.storage.db import database
from helpers import assert_error, assert_ok, send_json

BATCH = '/v3/shop/transactions/points'


def item(member=1, event_type='purchase', amount=100, **extra):
    return {'identifier_type': 'id', 'identifier': str(member), 'event_type': event_type,
            'amount': amount, **extra}


def post(client, items, club='shop', headers=None):
    return send_json(client, 'POST', '/v3/%s/transactions/points' % club, items, headers)


def statuses(result):
    return [feedback['status'] for feedback in assert_ok(result)]


def wallets(client, member=1, club='shop'):
    return assert_ok(client.simulate_get(
        '/v3/%s/transactions/points/by_member_id/%d' % (club, member)))


def events(client, member=1, club='shop', query=''):
    return assert_ok(client.simulate_get(
        '/v3/%s/transactions/points/events/%d' % (club, member), query_string=query))


def points_state():
    with database.connection_context():
        return (list(PointsEntry.select().order_by(PointsEntry.id).tuples()),
                list(PointsBalance.select().order_by(PointsBalance.id).tuples()),
                list(PointsTransaction.select().order_by(PointsTransaction.transaction_id)
                     .tuples()))


@pytest.fixture
def member(client):
    result = send_json(client, 'POST', '/user',
                       {'uid': 1, 'email': 'ann@example.com', 'msisdn': '+48123456789'})
    assert_ok(result, 201)
    return 1


# -- the batch -------------------------------------------------------------

def test_every_status_in_one_batch(client, member):
    result = post(client, [
        item(amount=100, transaction_id='t-1'),
        item(event_type='use', amount=-30),
        item(amount=5, transaction_id='t-1'),
        item(member=2),
        item(event_type='use', amount=10),
        item(event_type='purchase', amount=-10),
        item(event_type='revoke', amount=-71),
        item(event_type='other', amount=-5),
        item(event_type='other', amount=7),
    ])
    assert assert_ok(result) == [
        {'event_type': 'purchase', 'amount': 100, 'status': 'ok'},
        {'event_type': 'use', 'amount': -30, 'status': 'ok'},
        {'event_type': 'purchase', 'amount': 5, 'status': 'Duplicate transaction'},
        {'event_type': 'purchase', 'amount': 100, 'status': 'Member does not exist'},
        {'event_type': 'use', 'amount': 10, 'status': 'Incorrect amount'},
        {'event_type': 'purchase', 'amount': -10, 'status': 'Incorrect amount'},
        {'event_type': 'revoke', 'amount': -71, 'status': 'Not enough points in the wallet'},
        {'event_type': 'other', 'amount': -5, 'status': 'ok'},
        {'event_type': 'other', 'amount': 7, 'status': 'ok'},
    ]
    assert wallets(client) == {'default': 72}


@pytest.mark.parametrize('event_type, amount', [
    ('purchase', 1), ('campaign', 1), ('issue', 1), ('other', 1)])
def test_granting_event_types_add_points(client, member, event_type, amount):
    assert statuses(post(client, [item(event_type=event_type, amount=amount)])) == ['ok']
    assert wallets(client) == {'default': 1}


@pytest.mark.parametrize('event_type', ['use', 'revoke', 'expire', 'other'])
def test_taking_event_types_take_points(client, member, event_type):
    assert statuses(post(client, [item(amount=10), item(event_type=event_type, amount=-4)])) == [
        'ok', 'ok']
    assert wallets(client) == {'default': 6}


def test_members_are_found_by_msisdn_and_email(client, member):
    result = post(client, [
        {'identifier_type': 'msisdn', 'identifier': '+48123456789', 'event_type': 'issue',
         'amount': 10},
        {'identifier_type': 'email', 'identifier': 'ann@example.com', 'event_type': 'issue',
         'amount': 5},
        {'identifier_type': 'email', 'identifier': 'bob@example.com', 'event_type': 'issue',
         'amount': 5},
        {'identifier_type': 'id', 'identifier': 1, 'event_type': 'issue', 'amount': 1},
        {'identifier_type': 'id', 'identifier': 'ann@example.com', 'event_type': 'issue',
         'amount': 1},
    ])
    assert statuses(result) == ['ok', 'ok', 'Member does not exist', 'ok',
                                'Member does not exist']
    assert wallets(client) == {'default': 16}


def test_a_refused_item_changes_nothing_and_leaves_its_transaction_id_free(client, member):
    assert statuses(post(client, [item(amount=10)])) == ['ok']
    before = points_state()
    refused = post(client, [item(event_type='use', amount=-11, transaction_id='r-1')])
    assert statuses(refused) == ['Not enough points in the wallet']
    assert points_state() == before
    # The refusal did not claim the id: a later item may use it.
    assert statuses(post(client, [item(event_type='use', amount=-10, transaction_id='r-1')])) == [
        'ok']
    assert wallets(client) == {'default': 0}


def test_a_transaction_id_is_applied_once_across_batches_and_per_club(client, member):
    assert statuses(post(client, [item(amount=10, transaction_id='x')])) == ['ok']
    assert statuses(post(client, [item(amount=10, transaction_id='x')])) == [
        'Duplicate transaction']
    assert statuses(post(client, [item(amount=10, transaction_id='x')], club='cafe')) == ['ok']
    assert wallets(client) == {'default': 10}
    assert wallets(client, club='cafe') == {'default': 10}


def test_clubs_and_wallets_are_separate(client, member):
    assert statuses(post(client, [item(amount=10), item(amount=3, wallet='gold')])) == [
        'ok', 'ok']
    assert statuses(post(client, [item(event_type='use', amount=-1)], club='cafe')) == [
        'Not enough points in the wallet']
    assert wallets(client) == {'default': 10, 'gold': 3}
    assert wallets(client, club='cafe') == {}
    assert statuses(post(client, [item(event_type='use', amount=-4, wallet='gold')])) == [
        'Not enough points in the wallet']


def _malformed(result):
    assert result.status_code == 422, result.text
    assert result.json['error'] == 'Invalid format'
    assert set(result.json) == {'error', 'details'}
    return result.json['details']


@pytest.mark.parametrize('bad, field', [
    ({'amount': None}, 'amount'),
    ({'amount': '10'}, 'amount'),
    ({'amount': True}, 'amount'),
    ({'amount': 0}, 'amount'),
    ({'amount': 1.5}, 'amount'),
    ({'amount': 10 ** 15}, 'amount'),
    ({'identifier_type': 'phone'}, 'identifier_type'),
    ({'identifier': ''}, 'identifier'),
    ({'identifier': None}, 'identifier'),
    ({'event_type': 'gift'}, 'event_type'),
    ({'event_date': 'yesterday'}, 'event_date'),
    ({'event_date': '2022-10-31'}, 'event_date'),
    ({'expiry_points_date': '2022-13-01'}, 'expiry_points_date'),
    ({'wallet_new_balance': 'ten'}, 'wallet_new_balance'),
    ({'wallet': ''}, 'wallet'),
    ({'transaction_id': ''}, 'transaction_id'),
    ({'message': 'x' * 1025}, 'message'),
    ({'store_id': 'a\x00b'}, 'store_id'),
    ({'additional_properties': []}, 'additional_properties'),
    ({'additional_properties': {'note': 'x' * 4096}}, 'additional_properties'),
    ({'colour': 'red'}, 'colour'),
])
def test_a_malformed_item_refuses_the_whole_batch(client, member, bad, field):
    before = points_state()
    result = post(client, [item(amount=5), {**item(amount=5), **bad}])
    assert list(_malformed(result)) == ['[1].%s' % field]
    assert points_state() == before
    assert wallets(client) == {}


def test_a_missing_field_is_named_and_every_bad_field_is_listed(client, member):
    details = _malformed(post(client, [
        {'identifier_type': 'id', 'event_type': 'use', 'amount': -5},
        'not an object',
        item(),
        {**item(), 'amount': 'x', 'event_type': 'y'},
    ]))
    assert set(details) == {'[0].identifier', '[1]', '[3].amount', '[3].event_type'}
    assert all(isinstance(reason, str) and reason for reason in details.values())


@pytest.mark.parametrize('body', [
    {'identifier_type': 'id'}, '"text"', '12', '[1,', '', 'null'])
def test_a_body_that_is_no_json_array_is_invalid_format(client, member, body):
    text = body if isinstance(body, str) else json.dumps(body)
    result = client.simulate_post(BATCH, body=text,
                                  headers={'Content-Type': 'application/json'})
    assert list(_malformed(result)) == ['body']


def test_more_than_1000_items_are_invalid_format(client, member):
    # 1,000 items are more than the default body limit of other requests.
    assert len(json.dumps([item(amount=1)] * 1000)) > Settings().max_body_bytes
    assert list(_malformed(post(client, [item(amount=1)] * 1001))) == ['body']
    assert wallets(client) == {}
    assert statuses(post(client, [item(amount=1)] * 1000)) == ['ok'] * 1000
    assert wallets(client) == {'default': 1000}


def test_a_batch_body_over_4_mib_is_refused_unread(client, member):
    answer = client.simulate_post(BATCH, body=b' ' * (4 * 1024 * 1024 + 1),
                                  headers={'Content-Type': 'application/json'})
    assert_error(answer, 520)


@pytest.mark.parametrize('club', ['Shop', '-shop', 'a' * 65, 'sh%20op', 'caf%C3%A9'])
def test_a_bad_club_slug_is_612(client, member, club):
    assert_error(post(client, [item()], club=club), 612)
    assert_error(client.simulate_get('/v3/%s/transactions/points/by_member_id/1' % club), 612)
    assert_error(client.simulate_get('/v3/%s/transactions/points/events/1' % club), 612)


def test_a_club_slug_of_64_characters_is_accepted(client, member):
    club = 'a' * 30 + '-_' + '9' * 32
    assert statuses(post(client, [item(amount=2)], club=club)) == ['ok']
    assert wallets(client, club=club) == {'default': 2}


def test_reported_figures_are_stored_as_reported_and_never_used(client, member):
    result = post(client, [item(amount=10, wallet_new_balance=999, expiry_points_balance=5,
                                expiry_points_date='2000-01-01',
                                additional_properties={'channel': 'app', 'n': 2})])
    assert statuses(result) == ['ok']
    # An expiry date in the past would make the grant unspendable: it is not the grant's.
    assert wallets(client) == {'default': 10}
    assert events(client)[0]['wallet_new_balance'] == 10
    with database.connection_context():
        entry = PointsEntry.get()
    assert entry.expires_on is None
    assert json.loads(entry.reported) == {'wallet_new_balance': 999, 'expiry_points_balance': 5,
                                          'expiry_points_date': '2000-01-01'}
    assert json.loads(entry.properties) == {'channel': 'app', 'n': 2}


def test_event_dates_are_converted_to_utc(client, member):
    assert statuses(post(client, [
        item(amount=1, event_date='2022-10-31T01:30:00+02:00'),
        item(amount=1, event_date='2022-10-31T10:00:00'),
        item(amount=1, event_date='2022-10-31T10:00:00.250Z')])) == ['ok'] * 3
    assert [event['date'] for event in events(client)] == [
        '2022-10-31T10:00:00Z', '2022-10-31T10:00:00Z', '2022-10-30T23:30:00Z']


def test_a_retried_batch_with_the_same_key_is_applied_once(client, member):
    key = {'Idempotency-Key': 'batch-1'}
    batch = [item(amount=10), item(event_type='use', amount=-3)]
    first = post(client, batch, headers=key)
    again = post(client, batch, headers=key)
    assert assert_ok(again) == assert_ok(first)
    assert again.headers.get('Idempotent-Replayed') == 'true'
    assert wallets(client) == {'default': 7}
    assert len(events(client)) == 2
    assert_error(post(client, [item(amount=11)], headers=key), 518)


def test_a_refused_item_within_a_keyed_batch_leaves_no_claim(client, member):
    key = {'Idempotency-Key': 'batch-2'}
    result = post(client, [item(event_type='use', amount=-1, transaction_id='k')], headers=key)
    assert statuses(result) == ['Not enough points in the wallet']
    assert points_state()[2] == []


# -- look-ups --------------------------------------------------------------

def test_lookups_by_id_msisdn_and_email(client, member):
    assert wallets(client) == {}
    post(client, [item(amount=100), item(amount=10, wallet='other_wallet')])
    for path in ('by_member_id/1', 'by_msisdn/+48123456789', 'by_email/ann@example.com'):
        assert assert_ok(client.simulate_get('/v3/shop/transactions/points/' + path)) == {
            'default': 100, 'other_wallet': 10}
        assert assert_ok(client.simulate_get('/v3/cafe/transactions/points/' + path)) == {}


@pytest.mark.parametrize('path, code', [
    ('by_member_id/2', 509), ('by_msisdn/+48000000000', 509), ('by_email/bob@example.com', 509),
    ('by_member_id/0', 507), ('by_member_id/abc', 507)])
def test_lookups_of_unknown_members(client, member, path, code):
    assert_error(client.simulate_get('/v3/shop/transactions/points/' + path), code)


# -- events ----------------------------------------------------------------

EVENT_KEYS = {'id', 'member_id', 'date', 'type', 'wallet', 'amount', 'wallet_new_balance',
              'store_id', 'receipt_id', 'event', 'message'}


@pytest.fixture
def history(client, member):
    """Six events of member 1 in club shop (ids 1-6), one in another club."""
    assert statuses(post(client, [
        item(event_type='purchase', amount=100, event_date='2022-10-01T12:00:00Z',
             store_id='s-1', receipt_id='r-1', event='buy', message='thanks'),
        item(event_type='campaign', amount=50, event_date='2022-10-02T12:00:00Z', wallet='gold'),
        item(event_type='use', amount=-30, event_date='2022-10-03T12:00:00Z', store_id='s-2'),
        item(event_type='revoke', amount=-20, event_date='2022-10-04T12:00:00Z'),
        item(event_type='expire', amount=-10, event_date='2022-10-05T23:59:59Z'),
        item(event_type='other', amount=-5, event_date='2022-10-06T00:00:00Z', event='fix'),
    ])) == ['ok'] * 6
    assert statuses(post(client, [item(amount=1)], club='cafe')) == ['ok']


def test_events_are_newest_first_with_the_service_balance(client, history):
    rows = events(client)
    assert [row['id'] for row in rows] == [6, 5, 4, 3, 2, 1]
    assert all(set(row) == EVENT_KEYS for row in rows)
    assert [(row['type'], row['wallet'], row['amount'], row['wallet_new_balance'])
            for row in rows] == [
        ('use_points', 'default', -5, 35), ('expire_points', 'default', -10, 40),
        ('revoke_points', 'default', -20, 50), ('use_points', 'default', -30, 70),
        ('issue_points', 'gold', 50, 50), ('issue_points', 'default', 100, 100)]
    assert rows[-1] == {'id': 1, 'member_id': 1, 'date': '2022-10-01T12:00:00Z',
                        'type': 'issue_points', 'wallet': 'default', 'amount': 100,
                        'wallet_new_balance': 100, 'store_id': 's-1', 'receipt_id': 'r-1',
                        'event': 'buy', 'message': 'thanks'}
    assert [row['amount'] for row in events(client, club='cafe')] == [1]
    assert events(client, club='nowhere') == []


@pytest.mark.parametrize('query, ids', [
    ('type=issue_points', [2, 1]),
    ('type=use_points', [6, 3]),
    ('type=revoke_points', [4]),
    ('type=expire_points', [5]),
    ('event=fix', [6]),
    ('message=thanks', [1]),
    ('wallet=gold', [2]),
    ('amount=-30', [3]),
    ('amount=30', []),
    ('receipt_id=r-1', [1]),
    ('store_id=s-2', [3]),
    ('date-start=2022-10-05', [6, 5]),
    ('date-end=2022-10-02', [2, 1]),
    ('date-start=2022-10-03&date-end=2022-10-05', [5, 4, 3]),
    ('date-start=2022-10-04&date-end=2022-10-03', []),
    ('type=use_points&store_id=s-2', [3]),
    ('limit=2', [6, 5]),
    ('before_id=3', [2, 1]),
    ('before_id=5&limit=2', [4, 3]),
])
def test_events_filters_and_paging(client, history, query, ids):
    assert [row['id'] for row in events(client, query=query)] == ids


def test_paging_with_before_id_reads_every_event_once(client, history):
    seen, query = [], 'limit=4'
    while True:
        page = events(client, query=query)
        if not page:
            break
        seen += [row['id'] for row in page]
        query = 'limit=4&before_id=%d' % page[-1]['id']
    assert seen == [6, 5, 4, 3, 2, 1]


@pytest.mark.parametrize('query, code', [
    ('colour=red', 613), ('limit=1&limit=2', 613), ('type=gift', 614), ('amount=1.5', 614),
    ('amount=ten', 614), ('event=a%00b', 614), ('date-start=2022-1-01', 615),
    ('date-end=2022-02-30', 615), ('limit=0', 616), ('limit=', 616), ('before_id=-1', 616),
    ('before_id=9223372036854775808', 616)])
def test_bad_event_filters_are_coded(client, history, query, code):
    assert_error(client.simulate_get('/v3/shop/transactions/points/events/1',
                                     query_string=query), code)


def test_events_of_unknown_members(client, member):
    assert_error(client.simulate_get('/v3/shop/transactions/points/events/2'), 509)
    assert_error(client.simulate_get('/v3/shop/transactions/points/events/x'), 507)
    assert events(client) == []


def test_a_long_events_answer_is_streamed(client, member, monkeypatch):
    monkeypatch.setattr('balance_api.web.streaming.FETCH_ROWS', 3)
    assert statuses(post(client, [item(amount=index) for index in range(1, 11)])) == ['ok'] * 10
    result = client.simulate_get('/v3/shop/transactions/points/events/1')
    assert 'content-length' not in result.headers
    assert [row['amount'] for row in assert_ok(result)] == list(range(10, 0, -1))
    assert [row['amount'] for row in events(client, query='limit=3')] == [10, 9, 8]


def test_an_other_event_is_typed_by_its_sign(client, member):
    assert statuses(post(client, [item(event_type='other', amount=7),
                                  item(event_type='other', amount=-2)])) == ['ok', 'ok']
    assert [(row['type'], row['amount']) for row in events(client)] == [
        ('use_points', -2), ('issue_points', 7)]
    assert [row['amount'] for row in events(client, query='type=issue_points')] == [7]
    assert [row['amount'] for row in events(client, query='type=use_points')] == [-2]
