"""Every endpoint, every way of being refused: no key, a bad header, an
unknown, revoked or expired key, a missing permit, and a key bound to
another user. A refused request reads nothing and changes nothing."""
import datetime
import json
import re

import falcon.testing
import pytest

from balance_api.auth import keys, permits
from balance_api.points.models import PointsEntry
from balance_api.storage.db import database
from balance_api.web.idempotency import IdempotencyRecord
from conftest import FORM
from gunicorn_server import bearer, create_key_in
from helpers import assert_error, assert_ok, snapshot

JSON = {'Content-Type': 'application/json'}
V3 = '/v3/default/transactions/points'


def _item(identifier_type='id', identifier='1', amount=5):
    return {'identifier_type': identifier_type, 'identifier': identifier,
            'event_type': 'purchase' if amount > 0 else 'use', 'amount': amount}


# (method, path, headers, body, the permit it needs), one or more per route.
ENDPOINTS = [
    ('GET', '/balance', {}, None, permits.BALANCE_LIST),
    ('GET', '/balance/1', {}, None, permits.BALANCE_GET),
    ('HEAD', '/balance/1', {}, None, permits.BALANCE_GET),
    ('PUT', '/balance/1', FORM, 'operation=add&balance=1', permits.BALANCE_UPDATE),
    ('POST', '/user', FORM, 'uid=5', permits.USER_CREATE),
    ('PUT', '/user/1', FORM, 'email=one@example.com', permits.USER_CREATE),
    ('DELETE', '/balance_delete_user/2', {}, None, permits.USER_DELETE),
    ('PUT', '/transfer', FORM, 'sender_id=1&receiver_id=2&balance=1', permits.TRANSFER_CREATE),
    ('GET', '/history', {}, None, permits.HISTORY_LIST),
    ('GET', '/history/uid=1', {}, None, permits.HISTORY_LIST),
    ('POST', '/points/1/add', JSON, json.dumps({'payer': 'DANNON', 'points': 5}),
     permits.POINTS_CREATE),
    ('POST', '/points/1/spend', JSON, json.dumps({'points': 1}), permits.POINTS_CREATE),
    ('GET', '/points/1/balance', {}, None, permits.POINTS_GET),
    ('POST', V3, JSON, json.dumps([_item()]), permits.POINTS_CREATE),
    ('GET', V3 + '/by_member_id/1', {}, None, permits.POINTS_GET),
    ('GET', V3 + '/by_msisdn/%2B48100000001', {}, None, permits.POINTS_GET),
    ('GET', V3 + '/by_email/one@example.com', {}, None, permits.POINTS_GET),
    ('GET', V3 + '/events/1', {}, None, permits.POINTS_LIST),
    ('GET', '/export?date-start=2020-01-01&date-end=2030-01-01', {}, None, permits.EXPORT_GET),
    ('GET', '/export/manifest?date-start=2020-01-01&date-end=2030-01-01', {}, None,
     permits.EXPORT_GET),
    ('GET', '/export/points?date-start=2020-01-01&date-end=2030-01-01', {}, None,
     permits.EXPORT_GET),
    ('GET', '/export/points/manifest?date-start=2020-01-01&date-end=2030-01-01', {}, None,
     permits.EXPORT_GET),
    ('GET', '/reconciliation?date-start=2020-01-01&date-end=2030-01-01', {}, None,
     permits.EXPORT_GET),
    ('GET', '/metrics', {}, None, permits.METRICS_GET),
    ('GET', '/export/discounts?date-start=2020-01-01&date-end=2030-01-01', {}, None,
     permits.EXPORT_GET),
    ('GET', '/export/discounts/manifest?date-start=2020-01-01&date-end=2030-01-01', {}, None,
     permits.EXPORT_GET),
    ('GET', '/discounts/1/code?user_id=1', {}, None, permits.DISCOUNT_CODES_GET),
    ('GET', '/discounts/1/stats', {}, None, permits.ADMIN),
]
OPEN_ROUTES = {'/health', '/ready', '/openapi.json', '/api/docs', '/export/public-key'}
# The discount codes' existing clients' routes answer every refusal in those
# clients' envelope, and one takes its key from the path:
# tests/discounts/test_discounts_access.py runs this matrix on them.
ENVELOPE_ROUTES = {'/discounts/api/v1.0/generate',
                   '/discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}'}


def _ids(endpoints):
    return ['%s %s' % (method, path) for method, path, *_ in endpoints]


@pytest.fixture
def members(client):
    for uid, contact in ((1, 'email=one@example.com&msisdn=%2B48100000001'), (2, ''), (3, '')):
        assert_ok(client.simulate_post('/user', headers=FORM, body='uid=%d&%s' % (uid, contact)),
                  201)
    assert_ok(client.simulate_put('/balance/1', headers=FORM, body='operation=add&balance=50'))
    assert_ok(client.simulate_post('/points/1/add', json={'payer': 'DANNON', 'points': 100}),
              201)
    assert_ok(client.simulate_post('/discounts/api/v1.0/generate',
                                   json={'brand_id': 1, 'number_of_codes': 5}), 201)


def _everything():
    with database.connection_context():
        points = list(PointsEntry.select(PointsEntry.id, PointsEntry.amount).tuples())
        idempotency = IdempotencyRecord.select().count()
    return snapshot(), points, idempotency


def _send(anonymous, method, path, headers, body, credentials):
    return anonymous.simulate_request(method, path, headers={**headers, **credentials},
                                      body=body)


def _key(name, key_permits, uid=None, expires_on=None):
    db = database.obj
    token = create_key_in(db, name, key_permits, uid=uid)
    if expires_on is not None:
        with db.connection_context():
            from balance_api.auth.models import ApiKey
            ApiKey.update(expires_on=expires_on).where(ApiKey.name == name).execute()
    return token


def _revoked(name):
    token = _key(name, [permits.ADMIN])
    with database.obj.connection_context():
        keys.revoke_key(database.obj, name)
    return token


def test_every_route_needing_a_key_is_in_the_matrix(app):
    for template, resource in app.routes:
        if getattr(resource, 'public', False):
            assert template in OPEN_ROUTES, template
            continue
        if template in ENVELOPE_ROUTES:
            continue
        pattern = re.compile(re.sub(r'\\{\w+\\}', '[^/?]+', re.escape(template)) + r'(\?.*)?')
        for method in getattr(resource, 'permits', {}):
            assert any(m == method and pattern.fullmatch(path) for m, path, *_ in ENDPOINTS), (
                method, template)


@pytest.mark.parametrize('method, path, headers, body, needed', ENDPOINTS, ids=_ids(ENDPOINTS))
def test_each_refusal_is_its_own_code_and_changes_nothing(
        anonymous, members, method, path, headers, body, needed):
    others = [name for name in permits.ALL if name not in (needed, permits.ADMIN)]
    cases = [
        ({}, 701),
        ({'Authorization': 'Basic dXNlcjpwYXNz'}, 702),
        ({'Authorization': 'Bearer'}, 702),
        ({'Authorization': 'Bearer ' + 'x' * 43, 'X-Client-Authorization': 'x' * 43}, 702),
        ({'X-Client-Authorization': 'not a token'}, 702),
        (bearer('A' * 43), 703),
        ({'X-Client-Authorization': 'B' * 43}, 703),
        (bearer(_revoked('revoked')), 704),
        (bearer(_key('expired', [permits.ADMIN],
                     expires_on=datetime.date.today() - datetime.timedelta(days=2))), 705),
        ({'X-Client-Authorization': _key('other-permits', others)}, 706),
    ]
    before = _everything()
    for credentials, code in cases:
        result = _send(anonymous, method, path, headers, body, credentials)
        if method == 'HEAD':
            status = 401 if code < 706 else 403
            assert result.status_code == status, (credentials, result.status)
        else:
            assert_error(result, code)
        if code < 706:
            assert result.headers['WWW-Authenticate'] == 'Bearer'
        else:
            assert 'WWW-Authenticate' not in result.headers
    assert _everything() == before


@pytest.mark.parametrize('method, path, headers, body, needed', ENDPOINTS, ids=_ids(ENDPOINTS))
def test_the_permit_alone_is_enough_and_admin_is_everything(
        anonymous, members, method, path, headers, body, needed):
    for name, key_permits in (('only-' + needed.replace(':', '-'), [needed]),
                              ('admin-key', [permits.ADMIN])):
        if name == 'admin-key' and method in ('POST', 'PUT', 'DELETE'):
            continue  # the change is made once, with the narrow key
        token = _key(name, key_permits)
        result = _send(anonymous, method, path, headers, body, bearer(token))
        assert result.status_code < 400, (name, result.status, result.text)


# A key bound to user 1 asks about user 2 (or 3): every route, every form.
OTHER_USER = [
    ('GET', '/balance/2', {}, None),
    ('HEAD', '/balance/2', {}, None),
    ('PUT', '/balance/2', FORM, 'operation=add&balance=1'),
    ('POST', '/user', FORM, 'uid=9'),
    ('PUT', '/user/2', FORM, 'email=two@example.com'),
    ('DELETE', '/balance_delete_user/2', {}, None),
    ('PUT', '/transfer', FORM, 'sender_id=2&receiver_id=1&balance=1'),
    ('GET', '/history/uid=2', {}, None),
    ('GET', '/history?uid=2', {}, None),
    ('GET', '/history/uid=2&limit=5&after_id=0', {}, None),
    ('GET', '/history?date-start=2020-01-01&date-end=2030-01-01&uid=2', {}, None),
    ('GET', '/history/date-start=2020-01-01&uid=2', {}, None),
    ('POST', '/points/2/add', JSON, json.dumps({'payer': 'DANNON', 'points': 5})),
    ('POST', '/points/2/spend', JSON, json.dumps({'points': 1})),
    ('GET', '/points/2/balance', {}, None),
    ('POST', V3, JSON, json.dumps([_item(), _item(identifier='2')])),
    ('POST', V3, JSON, json.dumps([_item(identifier='424242')])),
    ('GET', V3 + '/by_member_id/2', {}, None),
    ('GET', V3 + '/by_member_id/424242', {}, None),
    ('GET', V3 + '/by_email/nobody@example.com', {}, None),
    ('GET', V3 + '/by_msisdn/%2B48999999999', {}, None),
    ('GET', V3 + '/events/2', {}, None),
    ('GET', '/discounts/1/code?user_id=2', {}, None),
]


@pytest.mark.parametrize('method, path, headers, body', OTHER_USER, ids=_ids(OTHER_USER))
def test_a_user_bound_key_reaches_no_other_user(anonymous, members, method, path, headers, body):
    token = _key('user-1', [permits.ADMIN], uid=1)
    before = _everything()
    result = _send(anonymous, method, path, headers, body, bearer(token))
    if method == 'HEAD':
        assert result.status_code == 403
    else:
        assert_error(result, 707)
    assert _everything() == before


def test_a_user_bound_key_acts_for_its_user(anonymous, members):
    headers = bearer(_key('user-1', [permits.ADMIN], uid=1))
    balance = assert_ok(anonymous.simulate_get('/balance/1', headers=headers))
    assert balance == {'user_id': 1, 'balance': '50.00'}
    # Lists and history without a uid answer with its own rows only.
    assert assert_ok(anonymous.simulate_get('/balance', headers=headers)) == [balance]
    assert_ok(anonymous.simulate_put('/transfer', headers={**headers, **FORM},
                                     body='sender_id=1&receiver_id=2&balance=5'))
    rows = assert_ok(anonymous.simulate_get('/history', headers=headers))
    assert rows and all(1 in (row['sender_id'], row['receiver_id']) for row in rows)
    assert rows == assert_ok(anonymous.simulate_get('/history/uid=1', headers=headers))
    assert_ok(anonymous.simulate_post('/points/1/spend', headers=headers, json={'points': 1}))
    assert assert_ok(anonymous.simulate_get(V3 + '/by_email/one@example.com',
                                            headers=headers)) == {'default': 99}
    assert_ok(anonymous.simulate_post(V3, headers=headers, json=[_item(amount=-1)]))


def test_deleting_a_user_revokes_its_keys(client, anonymous, members):
    headers = bearer(_key('user-3', [permits.ADMIN], uid=3))
    assert_ok(anonymous.simulate_get('/balance/3', headers=headers))
    assert_ok(client.simulate_delete('/balance_delete_user/3'))
    # Restoring the account does not bring its keys back.
    assert_ok(client.simulate_post('/user', headers=FORM, body='uid=3&restore=true'), 201)
    assert_error(anonymous.simulate_get('/balance/3', headers=headers), 704)


def test_a_refused_delete_keeps_the_keys(client, anonymous, members):
    headers = bearer(_key('user-1', [permits.ADMIN], uid=1))
    # User 1 holds money: the deletion is refused, and the key lives on.
    assert client.simulate_delete('/balance_delete_user/1').status_code == 409
    assert_ok(anonymous.simulate_get('/balance/1', headers=headers))


def test_every_change_names_the_key_that_made_it(anonymous, members):
    headers = bearer(_key('shop-7', [permits.ADMIN]))
    assert_ok(anonymous.simulate_put('/transfer', headers={**headers, **FORM},
                                     body='sender_id=1&receiver_id=2&balance=1'))
    assert_ok(anonymous.simulate_post('/points/1/spend', headers=headers, json={'points': 2}))
    assert_ok(anonymous.simulate_post(V3, headers=headers, json=[_item(amount=3)]))
    from balance_api.money.models import JournalEntry
    with database.connection_context():
        journal = [name for name, in JournalEntry.select(JournalEntry.key_name)
                   .order_by(JournalEntry.id).tuples()]
        entries = [name for name, in PointsEntry.select(PointsEntry.key_name)
                   .order_by(PointsEntry.id).tuples()]
    assert journal[-1] == 'shop-7' and set(journal[:-1]) == {'test-admin'}
    assert entries == ['test-admin', 'shop-7', 'shop-7']


def test_idempotency_keys_belong_to_the_api_key_that_sent_them(anonymous, members):
    first = bearer(_key('first', [permits.ADMIN]))
    second = bearer(_key('second', [permits.ADMIN]))
    request = {'headers': {**FORM, 'Idempotency-Key': 'same-string'},
               'body': 'operation=add&balance=1'}
    answer = assert_ok(anonymous.simulate_put(
        '/balance/1', **{**request, 'headers': {**request['headers'], **first}}))
    again = anonymous.simulate_put('/balance/1', **{**request,
                                                    'headers': {**request['headers'], **second}})
    # Not a replay of the first key's answer: the second key's own deposit.
    assert 'Idempotent-Replayed' not in again.headers
    assert assert_ok(again)['balance'] == '52.00' and answer['balance'] == '51.00'
    replay = anonymous.simulate_put('/balance/1', **{**request,
                                                     'headers': {**request['headers'], **first}})
    assert replay.headers['Idempotent-Replayed'] == 'true' and replay.json == answer


def test_a_bound_key_is_checked_before_a_stored_answer(anonymous, members):
    bound = bearer(_key('user-1-only', [permits.ADMIN], uid=1))
    request = {**FORM, 'Idempotency-Key': 'k-1', **bound}
    assert_ok(anonymous.simulate_put('/balance/1', headers=request, body='operation=add&balance=1'))
    # The same key string for another user's balance is refused before the store is read.
    assert_error(anonymous.simulate_put('/balance/2', headers=request,
                                        body='operation=add&balance=1'), 707)


def test_auth_off_lets_anyone_in_and_says_so(database_url):
    from balance_api import create_app
    from balance_api.config import Settings
    app = create_app(Settings(database_url=database_url, auth=False))
    result = falcon.testing.TestClient(app).simulate_post('/user', headers=FORM, body='uid=4')
    assert_ok(result, 201)
    assert result.headers['X-Balance-Auth'] == 'off'


def test_the_openapi_document_states_each_permit(anonymous):
    document = assert_ok(anonymous.simulate_get('/openapi.json'))
    schemes = document['components']['securitySchemes']
    assert schemes['bearer'] == {'type': 'http', 'scheme': 'bearer',
                                 'description': '`Authorization: Bearer <token>`'}
    assert schemes['clientKey']['name'] == 'X-Client-Authorization'
    for path, operations in document['paths'].items():
        for method, operation in operations.items():
            if method == 'parameters':
                continue
            if path in ('/health', '/ready', '/export/public-key'):
                assert operation['security'] == []
                continue
            assert operation['x-permit'] in permits.ALL, (method, path)
            # A key sent in the path is no security scheme OpenAPI knows.
            assert operation['security'] == ([] if 'x-key-in-path' in operation else
                                             [{'bearer': []}, {'clientKey': []}])
            assert '`%s`' % operation['x-permit'] in operation['description']
            assert {'401', '403'} <= set(operation['responses'])
    assert document['paths']['/transfer']['put']['x-permit'] == permits.TRANSFER_CREATE
