"""Every error code with its HTTP status, and failures that must change nothing."""
import json
from urllib.parse import quote

import peewee
import pytest
from falcon.testing import StartResponseMock, create_environ

from balance_api import errors
from balance_api.storage.db import database
from balance_api.money.ledger import Ledger
from balance_api.money.models import Account, JournalEntry, Posting
from helpers import (BAD_USER_IDS, ERRORS, FORM, add, assert_error, assert_ok, balance_of,
                     failing, failing_read, failing_write, send_form, send_json, snapshot, sub,
                     transfer)


def test_the_error_catalogue_is_exactly_the_documented_one():
    actual = {e.code: (int(e.status[:3]), e.message) for e in errors.all_errors()}
    assert actual == ERRORS


# -- user ids, wherever they appear ------------------------------------------

@pytest.mark.parametrize('user_id', BAD_USER_IDS)
def test_malformed_user_id_is_507_everywhere(client, make_user, user_id):
    make_user(1, '5')
    make_user(2)
    in_path = quote(user_id, safe='')
    before = snapshot()
    assert_error(send_form(client, 'POST', '/user', {'uid': user_id}), 507)
    assert_error(client.simulate_get('/balance/' + in_path), 507)
    assert_error(send_form(client, 'PUT', '/balance/' + in_path,
                           {'operation': 'add', 'balance': '1'}), 507)
    assert_error(client.simulate_delete('/balance_delete_user/' + in_path), 507)
    assert_error(send_form(client, 'PUT', '/transfer',
                           {'sender_id': user_id, 'receiver_id': '2', 'balance': '1'}), 507)
    assert_error(send_form(client, 'PUT', '/transfer',
                           {'sender_id': '1', 'receiver_id': user_id, 'balance': '1'}), 507)
    assert_error(client.simulate_get('/history/uid=' + in_path), 507)
    assert_error(client.simulate_get('/history', query_string='uid=' + in_path), 507)
    assert snapshot() == before


# A JSON string is no JSON integer, even with digits only (once accepted: "2").
@pytest.mark.parametrize('user_id', [0, -1, 9223372036854775808, 1.0, True, None, [1], '01',
                                     '2', '9'])
def test_malformed_json_user_id_is_507(client, make_user, user_id):
    make_user(1, '5')
    make_user(2)
    before = snapshot()
    assert_error(send_json(client, 'POST', '/user', {'uid': user_id}), 507)
    assert_error(send_json(client, 'PUT', '/transfer',
                           {'sender_id': user_id, 'receiver_id': 2, 'balance': '1'}), 507)
    assert_error(send_json(client, 'PUT', '/transfer',
                           {'sender_id': 1, 'receiver_id': user_id, 'balance': '1'}), 507)
    assert snapshot() == before


# -- routing -----------------------------------------------------------------

UNKNOWN_ROUTES = [
    ('GET', '/nope'), ('GET', '/balance/1/extra'), ('GET', '/users'), ('POST', '/nope'),
    ('DELETE', '/balance_delete_user'), ('GET', '/api/docs/static/no-such-file.js'),
]
WRONG_METHODS = [
    ('POST', '/balance'), ('POST', '/balance/1'), ('DELETE', '/balance/1'), ('GET', '/user'),
    ('GET', '/transfer'), ('POST', '/transfer'), ('GET', '/balance_delete_user/1'),
    ('PUT', '/history'), ('POST', '/history/uid=1'), ('POST', '/health'), ('PUT', '/ready'),
    ('POST', '/openapi.json'),
]


def test_unknown_route_is_529(client):
    for method, path in UNKNOWN_ROUTES:
        assert_error(client.simulate_request(method, path), 529)


def test_wrong_method_is_530(client, make_user):
    make_user(1)
    before = snapshot()
    for method, path in WRONG_METHODS:
        assert_error(client.simulate_request(method, path, body='uid=1', headers=FORM), 530)
    assert snapshot() == before


# -- bodies ------------------------------------------------------------------

MUTATIONS = [
    ('PUT', '/balance/1', {'operation': 'add', 'balance': '1'}),
    ('POST', '/user', {'uid': '3'}),
    ('PUT', '/transfer', {'sender_id': '1', 'receiver_id': '2', 'balance': '1'}),
]


@pytest.fixture
def users(make_user):
    make_user(1, '5')
    make_user(2)


def test_body_larger_than_64_kib_is_520_and_changes_nothing(client, users):
    before = snapshot()
    for method, path, fields in MUTATIONS:
        padded = {**fields, 'trans_desc': 'x' * (64 * 1024)}
        assert_error(send_form(client, method, path, padded), 520)
        assert_error(send_json(client, method, path, padded), 520)
    assert snapshot() == before


def test_body_limit_is_64_kib_exactly(client, users):
    body = json.dumps({'operation': 'add', 'balance': '1'})
    at_limit = body + ' ' * (64 * 1024 - len(body))
    assert_error(send_json(client, 'PUT', '/balance/1', at_limit + ' '), 520)
    assert assert_ok(send_json(client, 'PUT', '/balance/1', at_limit)) == {
        'user_id': 1, 'balance': '6.00'}


def test_chunked_body_without_length_is_521(client, users):
    before = snapshot()
    for encoding in ('chunked', 'gzip, chunked'):
        for method, path, _ in MUTATIONS:
            result = client.simulate_request(
                method, path, headers={**FORM, 'Transfer-Encoding': encoding})
            assert_error(result, 521)
    assert snapshot() == before


@pytest.mark.parametrize('content_type', [
    'text/plain', 'multipart/form-data; boundary=xyz', 'application/xml',
])
def test_unsupported_content_type_is_522(client, users, content_type):
    before = snapshot()
    for method, path, fields in MUTATIONS:
        result = client.simulate_request(method, path, headers={'Content-Type': content_type},
                                         body='&'.join('%s=%s' % kv for kv in fields.items()))
        assert_error(result, 522)
    assert snapshot() == before


@pytest.mark.parametrize('content_type, body', [
    ('application/json', '{"uid": 3'),
    ('application/json', '[{"uid": 3}]'),
    ('application/json', '"uid=3"'),
    ('application/json', 'null'),
    ('application/json', "{'uid': 3}"),
    ('application/json', b'{"uid": 3, "email": "\xff@example.com"}'),
    ('application/json', '{"uid": 3, "email": NaN}'),
    ('application/json', '[' * 20000 + ']' * 20000),
    ('application/x-www-form-urlencoded', b'uid=3&email=\xe9@example.com'),
    ('application/x-www-form-urlencoded', b'uid=3&email=caf\xc3@example.com'),
    ('application/x-www-form-urlencoded', 'uid=3&email=%FF%FE@example.com'),
])
def test_malformed_body_is_523(client, users, content_type, body):
    before = snapshot()
    assert_error(client.simulate_post('/user', body=body, headers={'Content-Type': content_type}),
                 523)
    assert snapshot() == before


def test_unreadable_content_length_is_533(client):
    environ = create_environ('/user', method='POST', body='uid=3', headers=FORM)
    environ['CONTENT_LENGTH'] = 'three'
    start_response = StartResponseMock()
    body = b''.join(client.app(environ, start_response))
    assert start_response.status.startswith('400')
    assert json.loads(body) == {'code': 533, 'message': ERRORS[533][1]}
    assert_error(client.simulate_get('/balance/3'), 509)


# -- failures inside the database -------------------------------------------

@pytest.fixture
def ledger_users(make_user, client):
    make_user(1, '10')
    make_user(2)
    make_user(3)
    make_user(4)
    assert client.simulate_delete('/balance_delete_user/4').status_code == 200


OPERATIONS = {
    'create': lambda client: send_form(client, 'POST', '/user', {'uid': '9'}),
    'revive': lambda client: send_form(client, 'POST', '/user', {'uid': '4', 'restore': 'true'}),
    'delete': lambda client: client.simulate_delete('/balance_delete_user/3'),
    'add': lambda client: add(client, 1, '5'),
    'sub': lambda client: sub(client, 1, '5'),
    'transfer': lambda client: transfer(client, 1, 2, '5'),
}

DB_FAILURES = [
    ('create', Account, 'insert', peewee.IntegrityError, 501),
    ('create', Account, 'update', peewee.DatabaseError, 501),
    ('create', JournalEntry, 'insert', peewee.IntegrityError, 512),
    ('create', Posting, 'insert_many', peewee.DatabaseError, 512),
    ('revive', Account, 'update', peewee.DatabaseError, 501),
    ('revive', JournalEntry, 'insert', peewee.DatabaseError, 512),
    ('delete', Account, 'update', peewee.DatabaseError, 502),
    ('delete', JournalEntry, 'insert', peewee.IntegrityError, 512),
    ('delete', Posting, 'insert_many', peewee.DatabaseError, 512),
    ('add', Account, 'update', peewee.DatabaseError, 503),
    ('add', JournalEntry, 'insert', peewee.IntegrityError, 512),
    ('add', Posting, 'insert_many', peewee.DatabaseError, 512),
    ('sub', Account, 'update', peewee.DatabaseError, 503),
    ('sub', Posting, 'insert_many', peewee.IntegrityError, 512),
    ('transfer', Account, 'update', peewee.DatabaseError, 503),
    ('transfer', JournalEntry, 'insert', peewee.DatabaseError, 512),
    ('transfer', Posting, 'insert_many', peewee.IntegrityError, 512),
    # A lost database is retryable (503), whatever was being written.
    ('add', Posting, 'insert_many', peewee.OperationalError, 531),
    ('transfer', Account, 'update', peewee.InterfaceError, 531),
    ('create', JournalEntry, 'insert', peewee.OperationalError, 531),
    # Anything else is an internal error, still rolled back.
    ('add', Account, 'update', RuntimeError, 532),
    ('delete', Posting, 'insert_many', RuntimeError, 532),
]


@pytest.mark.parametrize('operation, model, method, exception, code', DB_FAILURES,
                         ids=['%s-%s.%s-%s' % (o, m.__name__, f, e.__name__)
                              for o, m, f, e, _ in DB_FAILURES])
def test_failure_while_writing_changes_nothing(client, ledger_users, monkeypatch, operation,
                                               model, method, exception, code):
    before = snapshot()
    with failing_write(monkeypatch, model, method, exception):
        result = OPERATIONS[operation](client)
    assert_error(result, code)
    # A balance never moves without its audit row, nor an audit row without its balance.
    assert snapshot() == before
    # Nothing is left half done: the same request now simply works.
    retried = OPERATIONS[operation](client)
    assert retried.status_code in (200, 201), retried.text
    assert snapshot() != before


@pytest.mark.parametrize('exception', [peewee.OperationalError, peewee.InterfaceError])
def test_unreachable_database_on_read_is_531(client, make_user, monkeypatch, exception):
    make_user(1, '5')
    with failing_read(monkeypatch, Account, exception):
        assert_error(client.simulate_get('/balance/1'), 531)
        assert_error(client.simulate_get('/balance'), 531)
    with failing_read(monkeypatch, JournalEntry, exception):
        assert_error(client.simulate_get('/history/uid=1'), 531)
        assert_error(client.simulate_get('/history'), 531)
    assert balance_of(client, 1) == '5.00'


def test_ready_is_531_when_the_database_does_not_answer(client, monkeypatch):
    assert assert_ok(client.simulate_get('/ready'))
    monkeypatch.setattr(database.obj, 'execute_sql', failing(peewee.OperationalError))
    assert_error(client.simulate_get('/ready'), 531)
    # Health does not depend on the database.
    assert client.simulate_get('/health').status_code == 200


@pytest.mark.parametrize('target, request_args', [
    ('balance', ('GET', '/balance/1', {})),
    ('change_balance', ('PUT', '/balance/1', {'body': 'operation=add&balance=1',
                                               'headers': FORM})),
    ('transfer', ('PUT', '/transfer', {'body': 'sender_id=1&receiver_id=2&balance=1',
                                       'headers': FORM})),
    ('create_user', ('POST', '/user', {'body': 'uid=3', 'headers': FORM})),
])
def test_unexpected_exception_is_json_532_without_details(client, users, monkeypatch, target,
                                                          request_args):
    def explode(*args, **kwargs):
        raise RuntimeError('secret internal detail')
    monkeypatch.setattr(Ledger, target, explode)
    method, path, kwargs = request_args
    result = client.simulate_request(method, path, **kwargs)
    assert_error(result, 532)
    assert 'secret' not in result.text
    assert 'Traceback' not in result.text
    assert '<html' not in result.text.lower()


def test_unexpected_exception_in_history_is_532(client, monkeypatch):
    monkeypatch.setattr('balance_api.money.history.parse_query', failing(RuntimeError))
    result = client.simulate_get('/history/uid=1')
    assert_error(result, 532)
    assert 'injected' not in result.text
