"""HTTP edge cases through falcon.testing: what a request means exactly, on every route.

Repeated JSON keys, encoded slashes and percent-decoding, media types, JSON
numbers, raw UTF-8 forms, HEAD, Range and Host.
"""
import json
import logging
import os

import pytest
import swagger_ui_bundle
from falcon.testing import StartResponseMock, TestClient, create_environ

from balance_api import create_app
from balance_api.config import Settings
from helpers import (ERRORS, FORM, assert_error, assert_ok, balance_of, last_history_row,
                     send_json, snapshot)


@pytest.fixture
def users(make_user):
    make_user(1, '10')
    make_user(3, '10')


# -- 1. a JSON object may not repeat a key -------------------------------------

REPEATED_KEYS = [
    ('PUT', '/balance/3', '{"operation":"sub","balance":"1","operation":"add","balance":"50"}'),
    ('PUT', '/balance/3', '{"operation":"add","balance":"1","balance":"1"}'),
    ('PUT', '/transfer', '{"sender_id":1,"receiver_id":3,"balance":"1","receiver_id":1}'),
    ('POST', '/user', '{"uid":5,"uid":5}'),
    # Any object, not only the top one.
    ('POST', '/user', '{"uid":5,"email":{"a":1,"a":2}}'),
    ('PUT', '/balance/3', '{"operation":"add","balance":"1","trans_desc":[{"x":1,"x":1}]}'),
]


@pytest.mark.parametrize('method, path, body', REPEATED_KEYS)
def test_json_object_repeating_a_key_is_523_and_changes_nothing(client, users, method, path,
                                                                 body):
    before = snapshot()
    assert_error(send_json(client, method, path, body), 523)
    assert snapshot() == before
    assert balance_of(client, 3) == '10.00'


# -- 2. paths mean what was sent -----------------------------------------------

ENCODED_SLASHES = [
    ('PUT', '/balance%2F3'), ('PUT', '/balance%2f3'), ('GET', '/balance%2F3'),
    ('GET', '/history%2Fuid=1'), ('GET', '/api%2Fdocs'), ('GET', '/api%2fdocs'),
    ('GET', '/api/docs/static%2Fswagger-ui.css'), ('DELETE', '/balance_delete_user%2F3'),
]


@pytest.mark.parametrize('method, path', ENCODED_SLASHES)
def test_encoded_slash_is_no_path_separator(client, users, method, path):
    before = snapshot()
    result = client.simulate_request(method, path, body='operation=add&balance=50',
                                     headers=FORM)
    assert_error(result, 529)
    assert snapshot() == before


@pytest.mark.parametrize('extras', [
    # gunicorn: RAW_URI, with the query string, maybe in absolute form.
    {'RAW_URI': '/balance%2F3?x=1'},
    {'RAW_URI': 'http://localhost/balance%2F3?x=1'},
    # uWSGI, mod_wsgi: REQUEST_URI.
    {'RAW_URI': '', 'REQUEST_URI': '/balance%2F3?x=1'},
])
def test_encoded_slash_is_found_wherever_the_server_passes_the_target(client, users, extras):
    before = snapshot()
    result = client.simulate_request('PUT', '/balance%2F3', body='operation=add&balance=50',
                                     headers=FORM, extras=extras)
    assert_error(result, 529)
    assert snapshot() == before


# (path form, query form): each is decoded exactly once, to the same filters.
HISTORY_FORMS = ['uid=%2531', 'uid%3D1', 'uid=1', 'uid=%31', 'uid=1&limit=%31',
                 'uid=1%26limit=1', 'date-start=2016-03-20%2B', 'uid=1&uid=1', 'x=1']


def _same_answer(first, second):
    assert (first.status_code, first.json) == (second.status_code, second.json)
    return first


def test_history_path_form_means_what_the_query_form_means(client, users):
    for query in HISTORY_FORMS:
        _same_answer(client.simulate_get('/history/' + query),
                     client.simulate_get('/history', query_string=query))
    assert_error(client.simulate_get('/history/uid=%2531'), 507)
    assert_error(client.simulate_get('/history/uid%3D1'), 515)
    rows = assert_ok(client.simulate_get('/history/uid=1'))
    assert [row['operation'] for row in rows] == ['user_add', 'balance_add']
    assert assert_ok(client.simulate_get('/history/uid=%31')) == rows


@pytest.mark.parametrize('extras', [
    {'RAW_URI': '/history/uid=%2531?'},
    {'RAW_URI': 'http://localhost/history/uid=%2531'},
    {'RAW_URI': '', 'REQUEST_URI': '/history/uid=%2531'},
    # Mounted under a prefix: the target has it, PATH_INFO does not.
    {'RAW_URI': '/api/v1/history/uid=%2531', 'SCRIPT_NAME': '/api/v1'},
    # A server that does not pass the target: PATH_INFO holds "uid=%31".
    {'RAW_URI': ''},
])
def test_history_path_form_is_decoded_once_whatever_the_server(client, users, extras):
    assert_error(client.simulate_get('/history/uid=%2531', extras=extras), 507)


# -- 6a. forms are UTF-8, escaped or not ---------------------------------------

def test_form_with_raw_utf8_is_accepted(client, users):
    body = 'operation=add&balance=1&trans_desc=caf\u00e9 \u20ac%20\u65e5'.encode('utf-8')
    result = client.simulate_put('/balance/3', body=body, headers=FORM)
    assert assert_ok(result) == {'user_id': 3, 'balance': '11.00'}
    assert last_history_row(client)['transaction_description'] == 'caf\u00e9 \u20ac \u65e5'


def test_form_keeps_its_semantics(client, users):
    # '+' is a space, escapes are decoded, a raw UTF-8 character stays itself.
    body = 'operation=add&balance=1&trans_desc=a+b%2Bc+\u00e9'.encode('utf-8')
    assert_ok(client.simulate_put('/balance/3', body=body, headers=FORM))
    assert last_history_row(client)['transaction_description'] == 'a b+c \u00e9'
    # A blank value is kept: an empty description asks for a generated hash.
    assert_ok(client.simulate_put('/balance/3', body='operation=add&balance=1&trans_desc=',
                                  headers=FORM))
    assert len(last_history_row(client)['transaction_description']) == 32
    # A repeated field is a list, which no field accepts.
    before = snapshot()
    body = 'operation=add&balance=1&trans_desc=\u00e9&trans_desc=\u00e9'.encode('utf-8')
    assert_error(client.simulate_put('/balance/3', body=body, headers=FORM), 526)
    assert_error(client.simulate_put('/balance/3', body='operation=add&balance=1&balance=1',
                                     headers=FORM), 508)
    assert snapshot() == before


@pytest.mark.parametrize('body', [
    b'operation=add&balance=1&trans_desc=caf\xe9',   # latin-1
    b'operation=add&balance=1&trans_desc=caf\xc3',   # cut short
    b'operation=add&balance=1&trans_desc=\xed\xa0\x80',  # a surrogate
    'operation=add&balance=1&trans_desc=\u00e9%FF'.encode('utf-8'),
])
def test_form_that_is_not_utf8_is_523(client, users, body):
    before = snapshot()
    assert_error(client.simulate_put('/balance/3', body=body, headers=FORM), 523)
    assert snapshot() == before


# -- 6b. media types are case-insensitive --------------------------------------

@pytest.mark.parametrize('content_type, body', [
    ('Application/JSON', '{"operation": "add", "balance": "1"}'),
    ('APPLICATION/JSON; Charset=UTF-8', '{"operation": "add", "balance": "1"}'),
    ('Application/X-WWW-Form-URLEncoded', 'operation=add&balance=1'),
    ('application/x-www-form-urlencoded ; charset=utf-8', 'operation=add&balance=1'),
])
def test_media_type_is_matched_case_insensitively(client, users, content_type, body):
    result = client.simulate_put('/balance/3', body=body, headers={'Content-Type': content_type})
    assert assert_ok(result) == {'user_id': 3, 'balance': '11.00'}


# -- 6c. JSON numbers are plain decimals ----------------------------------------

@pytest.mark.parametrize('number', ['12345e-2', '1e0', '1E2', '5.0e0', '1.5E+1', '0.5e1'])
def test_json_number_with_an_exponent_is_refused_by_its_field(client, users, number):
    before = snapshot()
    body = '{"operation": "add", "balance": %s}' % number
    assert_error(send_json(client, 'PUT', '/balance/3', body), 508)
    body = '{"sender_id": 1, "receiver_id": 3, "balance": %s}' % number
    assert_error(send_json(client, 'PUT', '/transfer', body), 508)
    body = '{"sender_id": %s, "receiver_id": 3, "balance": "1"}' % number
    assert_error(send_json(client, 'PUT', '/transfer', body), 507)
    assert_error(send_json(client, 'POST', '/user', '{"uid": %s}' % number), 507)
    body = '{"operation": "add", "balance": "1", "trans_desc": %s}' % number
    assert_error(send_json(client, 'PUT', '/balance/3', body), 526)
    assert snapshot() == before


def test_json_plain_decimals_are_still_amounts(client, users):
    for number, balance in [('12.5', '22.50'), ('5', '27.50'), ('0.05', '27.55')]:
        result = send_json(client, 'PUT', '/balance/3',
                           '{"operation": "add", "balance": %s}' % number)
        assert assert_ok(result) == {'user_id': 3, 'balance': balance}


def test_openapi_says_how_json_amounts_are_written(client):
    document = assert_ok(client.simulate_get('/openapi.json'))
    for name in ('BalanceChangeRequest', 'TransferRequest'):
        amount = document['components']['schemas'][name]['properties']['balance']
        assert 'never with an exponent' in amount['description']
        assert amount['pattern'].endswith('(\\.[0-9]{1,2})?$')


# -- 6d. HEAD wherever GET -------------------------------------------------------

GET_ROUTES = ['/balance', '/balance/1', '/balance/999', '/balance/x', '/history',
              '/history/uid=1', '/history/uid=x', '/history?uid=1', '/health', '/ready',
              '/openapi.json', '/api/docs', '/api/docs/static/swagger-ui.css']


def _headers_but_the_request_id(result):
    return {name: value for name, value in result.headers.items() if name != 'x-request-id'}


@pytest.mark.parametrize('path', GET_ROUTES)
def test_head_answers_like_get_without_a_body(client, users, path):
    path, _, query = path.partition('?')
    got = client.simulate_get(path, query_string=query)
    head = client.simulate_head(path, query_string=query)
    assert head.status == got.status
    assert _headers_but_the_request_id(head) == _headers_but_the_request_id(got)
    assert head.content == b''
    assert head.headers['x-request-id']


def test_head_where_there_is_no_get_is_530(client, users):
    for path in ('/transfer', '/user', '/balance_delete_user/1'):
        result = client.simulate_head(path)
        assert result.status_code == 405, path
        assert result.content == b''


def test_many_heads_of_a_streamed_answer_leave_the_pool_alone(client, monkeypatch):
    """A streamed answer holds a database connection and its transaction until
    it is closed; Falcon drops a HEAD answer's body without closing it."""
    from balance_api.web import streaming
    monkeypatch.setattr(streaming, 'FETCH_ROWS', 3)
    for uid in range(1, 6):
        assert client.simulate_post('/user', body='uid=%d' % uid, headers=FORM).status_code == 201
    for _ in range(3):
        for path in ('/history', '/balance'):
            # More than the pool holds (DB_POOL_SIZE, 4).
            for _ in range(4 * 3):
                head = client.simulate_head(path)
                assert head.status_code == 200, head.headers
                assert 'content-length' not in head.headers
    assert len(assert_ok(client.simulate_get('/history'))) == 5
    assert len(assert_ok(client.simulate_get('/balance'))) == 5


# -- 6e. Range past the end of a static file -----------------------------------

def test_range_past_the_end_of_a_static_file_is_416(client):
    size = os.path.getsize(os.path.join(swagger_ui_bundle.swagger_ui_path, 'swagger-ui.css'))
    result = client.simulate_get('/api/docs/static/swagger-ui.css',
                                 headers={'Range': 'bytes=%d-' % size})
    assert_error(result, 539)
    assert result.headers['content-range'] == 'bytes */%d' % size
    partial = client.simulate_get('/api/docs/static/swagger-ui.css',
                                  headers={'Range': 'bytes=0-9'})
    assert partial.status_code == 206 and len(partial.content) == 10


# -- 6f. HTTP/1.1 needs Host ----------------------------------------------------

def _call_without_host(app, path, **kwargs):
    environ = create_environ(path, **kwargs)
    del environ['HTTP_HOST']
    start_response = StartResponseMock()
    body = b''.join(app(environ, start_response))
    return start_response, body


def test_http11_request_without_host_is_540(client, users):
    before = snapshot()
    for method, path, body in [('GET', '/balance/3', ''), ('GET', '/nope', ''),
                               ('PUT', '/balance/3', 'operation=add&balance=1')]:
        start_response, answer = _call_without_host(client.app, path, method=method, body=body,
                                                    headers=FORM)
        assert start_response.status == '400 Bad Request'
        assert json.loads(answer) == {'code': 540, 'message': ERRORS[540][1]}
        assert start_response.headers_dict['x-request-id']
    assert snapshot() == before


def test_http10_request_without_host_is_served(client, users):
    result = client.simulate_get('/balance/3', http_version='1.0')
    assert assert_ok(result) == {'user_id': 3, 'balance': '10.00'}


# -- methods --------------------------------------------------------------------

@pytest.mark.filterwarnings('ignore:Unknown REQUEST_METHOD')
def test_unknown_method_is_537(client, users):
    for path in ('/balance/3', '/history'):
        result = client.simulate_request('FOO', path)
        assert_error(result, 537)


# -- error-log lines ---------------------------------------------------------------

def test_error_log_line_escapes_the_request_id(tmp_path, caplog):
    # Not a database at all: every request that needs one fails unexpectedly.
    garbage = tmp_path / 'garbage.db'
    garbage.write_bytes(b'this is not an SQLite file\n' * 100)
    client = TestClient(create_app(Settings(database_url='sqlite:///%s' % garbage)))
    with caplog.at_level(logging.ERROR, logger='balance_api'):
        # A well-formed token: looking it up is the first thing that fails.
        result = client.simulate_get('/balance/1', headers={'X-Request-ID': 'a "b" \\ c',
                                                            'Authorization': 'Bearer ' + 'A' * 43})
    assert_error(result, 532)
    assert result.headers['x-request-id'] == 'a "b" \\ c'
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ['request "a \\"b\\" \\\\ c" failed unexpectedly']
