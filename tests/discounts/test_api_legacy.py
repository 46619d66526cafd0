"""The existing clients' two calls, unchanged: generate, and get_code with a key as the
secret; every answer in their envelope, every error its own code."""
import pytest

import discounts_helpers

from balance_api.auth import permits
from balance_api.discounts import codes
from balance_api.discounts.models import DiscountAudit, DiscountCode
from balance_api.storage.db import database
from conftest import FORM
from discounts_helpers import CLAIM, GENERATE, claim, make_users, user_key
from gunicorn_server import bearer
from helpers import ERRORS, assert_ok, encode_form

BAD_IDS = ['0', '-1', '01', '9223372036854775808', '1.0', '1e2', 'abc', '+1', '\u0661']


@pytest.fixture
def generate(client):
    return lambda brand_id, number: discounts_helpers.generate(client, brand_id, number)


@pytest.fixture
def users(make_user):
    return make_users(make_user)


def assert_envelope_error(result, code):
    """The response is the numbered error ``code`` in the existing clients' envelope."""
    status, message = ERRORS[code]
    assert result.status_code == status, (code, result.status_code, result.text)
    assert result.headers['content-type'].startswith('application/json')
    assert result.json == {'code': str(code), 'data': '', 'message': message,
                           'status': 'error'}


def _codes(brand_id):
    with database.connection_context():
        return [code for code, in DiscountCode.select(DiscountCode.code)
                .where(DiscountCode.brand == brand_id).tuples()]


def _audit():
    with database.connection_context():
        return list(DiscountAudit.select(DiscountAudit.action, DiscountAudit.brand,
                                         DiscountAudit.codes, DiscountAudit.code,
                                         DiscountAudit.user_id, DiscountAudit.key_name)
                    .order_by(DiscountAudit.id).tuples())


def test_generate_as_json_and_as_form(client, generate):
    generate(1, 100)
    answer = client.simulate_post(GENERATE, headers=FORM,
                                  body=encode_form({'brand_id': 1, 'number_of_codes': 50}))
    assert assert_ok(answer, 201) == {
        'code': '201', 'data': '', 'message': 'System generated discount codes successfully',
        'status': 'success'}
    found = _codes(1)
    assert len(found) == len(set(found)) == 150
    assert all(codes.is_code(code) for code in found)
    assert _audit() == [('generate', 1, 100, None, None, 'test-admin'),
                        ('generate', 1, 50, None, None, 'test-admin')]


def test_a_brand_exists_from_its_first_generation(client, generate, users, anonymous):
    assert_envelope_error(claim(anonymous, 1, users[1], 7), 904)
    generate(7, 1)
    assert assert_ok(claim(anonymous, 1, users[1], 7))['data'] in _codes(7)


def test_twenty_thousand_codes_in_one_call_are_all_distinct(generate):
    generate(3, 20000)
    found = _codes(3)
    assert len(found) == len(set(found)) == 20000
    assert all(codes.is_code(code) for code in found)


def test_a_drawn_code_the_brand_has_is_drawn_again(client, generate, monkeypatch):
    generate(2, 3)
    taken = _codes(2)
    fresh = iter([taken[:2] + ['ZZZZZZZZ'], ['YYYYYYYY', 'XXXXXXXX']])
    monkeypatch.setattr(codes, 'draw', lambda count: next(fresh)[:count])
    generate(2, 3)
    assert sorted(_codes(2)) == sorted(taken + ['ZZZZZZZZ', 'YYYYYYYY', 'XXXXXXXX'])


@pytest.mark.parametrize('number', ['0', '-1', '1000001', '1.5', '1e3', 'ten', '', ' 5',
                                    '0100'])
def test_number_of_codes_must_be_1_to_a_million(client, number):
    result = client.simulate_post(GENERATE, headers=FORM,
                                  body=encode_form({'brand_id': 1, 'number_of_codes': number}))
    assert_envelope_error(result, 901)


@pytest.mark.parametrize('number', [0, 1000001, True, 2.5, None, [5]])
def test_number_of_codes_in_json(client, number):
    assert_envelope_error(client.simulate_post(GENERATE, json={
        'brand_id': 1, 'number_of_codes': number}), 901)


@pytest.mark.parametrize('brand_id', BAD_IDS)
def test_brand_id_must_be_a_positive_64_bit_integer(client, brand_id):
    result = client.simulate_post(GENERATE, headers=FORM,
                                  body=encode_form({'brand_id': brand_id, 'number_of_codes': 5}))
    assert_envelope_error(result, 902)


def test_missing_unknown_and_malformed_fields(client):
    assert_envelope_error(client.simulate_post(GENERATE, json={'number_of_codes': 5}), 902)
    assert_envelope_error(client.simulate_post(GENERATE, json={'brand_id': 5}), 901)
    assert_envelope_error(client.simulate_post(GENERATE, json={
        'brand_id': 5, 'number_of_codes': 5, 'brand': 'x'}), 524)
    assert_envelope_error(client.simulate_post(GENERATE, body='{"brand_id": 5,',
                                               headers={'Content-Type': 'application/json'}),
                          523)
    assert_envelope_error(client.simulate_post(GENERATE, body='<x/>',
                                               headers={'Content-Type': 'text/xml'}), 522)
    assert_envelope_error(client.simulate_get(GENERATE), 530)
    assert _audit() == []


def test_a_generation_with_an_idempotency_key_runs_once(client):
    request = {'json': {'brand_id': 4, 'number_of_codes': 10},
               'headers': {'Idempotency-Key': 'generate-4-once'}}
    first = client.simulate_post(GENERATE, **request)
    again = client.simulate_post(GENERATE, **request)
    assert first.status_code == again.status_code == 201 and first.json == again.json
    assert again.headers['Idempotent-Replayed'] == 'true'
    assert len(_codes(4)) == 10


def test_get_code_claims_once_and_answers_the_same_code_again(generate, users, anonymous):
    generate(1, 3)
    first = assert_ok(claim(anonymous, 1, users[1], 1))
    assert first['code'] == '201' and first['status'] == 'success' and first['message'] == ''
    assert first['data'] in _codes(1)
    for _ in range(2):
        assert assert_ok(claim(anonymous, 1, users[1], 1)) == first
    second = assert_ok(claim(anonymous, 2, users[2], 1))['data']
    assert second != first['data']
    claims = [row for row in _audit() if row[0] == 'claim']
    assert claims == [('claim', 1, 1, first['data'], 1, 'user-1'),
                      ('claim', 1, 1, second, 2, 'user-2')]


def test_out_of_codes_is_its_own_error(generate, users, anonymous):
    generate(1, 2)
    taken = {assert_ok(claim(anonymous, uid, users[uid], 1))['data'] for uid in (1, 2)}
    assert taken == set(_codes(1))
    assert_envelope_error(claim(anonymous, 3, users[3], 1), 906)
    # Those who hold one still get theirs.
    assert assert_ok(claim(anonymous, 1, users[1], 1))['data'] in taken


def test_one_code_per_user_and_brand_but_one_per_brand(generate, users, anonymous):
    generate(1, 2)
    generate(2, 2)
    one = assert_ok(claim(anonymous, 1, users[1], 1))['data']
    two = assert_ok(claim(anonymous, 1, users[1], 2))['data']
    assert one in _codes(1) and two in _codes(2)


def test_bad_ids_in_the_path(generate, users, anonymous):
    generate(1, 2)
    for bad in BAD_IDS:
        assert_envelope_error(claim(anonymous, bad, users[1], 1), 903)
        assert_envelope_error(claim(anonymous, 1, users[1], bad), 902)


def test_unknown_user(generate, anonymous, make_user):
    generate(1, 2)
    # A key bound to a user that never existed (create-key does not check).
    assert_envelope_error(claim(anonymous, 77, user_key(77), 1), 905)


def test_a_foreign_secret_is_refused(generate, users, anonymous):
    generate(1, 2)
    assert_envelope_error(claim(anonymous, 2, users[1], 1), 907)
    # An admin key bound to no user is nobody's secret either.
    unbound = user_key(None, name='unbound', key_permits=[permits.ADMIN])
    assert_envelope_error(claim(anonymous, 1, unbound, 1), 907)
    assert [row for row in _audit() if row[0] == 'claim'] == []


def test_a_wrong_secret_is_refused(generate, users, anonymous):
    generate(1, 2)
    assert_envelope_error(claim(anonymous, 1, 'A' * 43, 1), 703)
    assert_envelope_error(claim(anonymous, 1, 'not-a-token', 1), 702)
    assert_envelope_error(claim(anonymous, 1, users[1][:-1] + '%3F', 1), 702)
    no_permit = user_key(1, name='user-1-points', key_permits=[permits.POINTS_GET])
    assert_envelope_error(claim(anonymous, 1, no_permit, 1), 706)
    # The path's key is the only one: a header besides it is refused.
    result = anonymous.simulate_get(CLAIM % (1, users[1], 1), headers=bearer(users[1]))
    assert_envelope_error(result, 702)
    assert result.headers['WWW-Authenticate'] == 'Bearer'


def test_a_missing_segment_is_no_route(anonymous, users):
    result = anonymous.simulate_get('/discounts/api/v1.0/get_code/1/%s' % users[1])
    assert result.status_code == 404


def test_head_and_other_methods_are_refused_in_the_envelope(generate, users, anonymous):
    generate(1, 1)
    # No key is read from the path for a method the route does not answer.
    assert_envelope_error(anonymous.simulate_post(CLAIM % (1, users[1], 1)), 530)
    assert_envelope_error(anonymous.simulate_request('TRACE', CLAIM % (1, 'A' * 43, 1)), 530)
    assert anonymous.simulate_head(CLAIM % (1, users[1], 1)).status_code == 405
    # Nothing was claimed by them.
    assert [row for row in _audit() if row[0] == 'claim'] == []
