"""The clean form: GET /discounts/{brand_id}/code with the key in a header, and the
brand's figures (admin) and the discounts-stats command."""
import pytest

import discounts_helpers
from balance_api.auth import permits
from balance_api.discounts.commands import print_stats
from balance_api.storage.db import database
from discounts_helpers import claim, clean_claim, make_users, user_key
from gunicorn_server import bearer
from helpers import assert_error, assert_ok


@pytest.fixture
def generate(client):
    return lambda brand_id, number: discounts_helpers.generate(client, brand_id, number)


@pytest.fixture
def users(make_user):
    return make_users(make_user)


def test_the_keys_user_claims_and_asks_again(generate, users, anonymous):
    generate(1, 3)
    first = assert_ok(clean_claim(anonymous, users[1], 1))
    assert set(first) == {'brand_id', 'user_id', 'code'}
    assert first['brand_id'] == 1 and first['user_id'] == 1
    assert assert_ok(clean_claim(anonymous, users[1], 1)) == first
    # Both forms are one claim: the same code.
    assert assert_ok(claim(anonymous, 1, users[1], 1))['data'] == first['code']
    assert assert_ok(clean_claim(anonymous, users[1], 1, 'user_id=1')) == first


def test_a_key_bound_to_no_user_names_the_user(generate, users, client):
    generate(1, 3)
    assert_error(client.simulate_get('/discounts/1/code'), 908)
    first = assert_ok(client.simulate_get('/discounts/1/code', query_string='user_id=2'))
    assert first['user_id'] == 2
    assert assert_ok(clean_claim(client, users[2], 1))['code'] == first['code']


def test_a_bound_key_names_only_its_own_user(generate, users, anonymous):
    generate(1, 3)
    assert_error(clean_claim(anonymous, users[1], 1, 'user_id=2'), 707)


def test_errors_of_the_clean_form(generate, users, anonymous, client):
    generate(1, 1)
    assert_error(clean_claim(anonymous, users[1], 2), 904)
    assert_error(clean_claim(anonymous, users[1], 'abc'), 902)
    assert_error(clean_claim(anonymous, users[1], 1, 'user_id=x'), 903)
    assert_error(clean_claim(anonymous, users[1], 1, 'user=1'), 524)
    assert_error(clean_claim(anonymous, users[1], 1, 'user_id=1&user_id=1'), 524)
    assert_error(client.simulate_get('/discounts/1/code', query_string='user_id=99'), 905)
    assert_ok(clean_claim(anonymous, users[1], 1))
    assert_error(clean_claim(anonymous, users[2], 1), 906)
    assert_error(anonymous.simulate_get('/discounts/1/code'), 701)
    generator = user_key(3, name='generator', key_permits=[permits.DISCOUNT_CODES_GENERATE])
    assert_error(clean_claim(anonymous, generator, 1), 706)


def test_stats_count_generated_claimed_and_remaining(generate, users, anonymous, client):
    generate(1, 5)
    generate(1, 2)
    generate(2, 1)
    for uid in (1, 2, 3):
        assert_ok(clean_claim(anonymous, users[uid], 1))
    assert assert_ok(client.simulate_get('/discounts/1/stats')) == {
        'brand_id': 1, 'generated': 7, 'claimed': 3, 'remaining': 4}
    head = client.simulate_head('/discounts/1/stats')
    assert head.status_code == 200 and head.content == b''
    assert_error(client.simulate_get('/discounts/3/stats'), 904)
    assert_error(client.simulate_get('/discounts/0/stats'), 902)
    # Admin only: a key with every discount permit is not enough.
    both = user_key(4, name='both', key_permits=[permits.DISCOUNT_CODES_GET,
                                                 permits.DISCOUNT_CODES_GENERATE])
    assert_error(anonymous.simulate_get('/discounts/1/stats', headers=bearer(both)), 706)

    lines, errors = [], []
    assert print_stats(database.obj, out=lines.append, err=errors.append) == 0
    assert lines == ['brand  generated  claimed  remaining',
                     '    1          7        3          4',
                     '    2          1        0          1']
    lines = []
    assert print_stats(database.obj, 2, out=lines.append) == 0
    assert lines[1:] == ['    2          1        0          1']
    assert print_stats(database.obj, 9, out=lines.append, err=errors.append) == 1
    assert errors == ['discounts-stats: brand 9 does not exist (no codes were ever generated '
                      'for it)']


def test_generate_needs_its_permit(anonymous, make_user):
    token = user_key(make_user(1), name='getter', key_permits=[permits.DISCOUNT_CODES_GET])
    result = anonymous.simulate_post(discounts_helpers.GENERATE, headers=bearer(token),
                                     json={'brand_id': 1, 'number_of_codes': 1})
    assert result.status_code == 403 and result.json['code'] == '706'
    generator = user_key(None, name='generator',
                         key_permits=[permits.DISCOUNT_CODES_GENERATE])
    result = anonymous.simulate_post(discounts_helpers.GENERATE, headers=bearer(generator),
                                     json={'brand_id': 1, 'number_of_codes': 1})
    assert assert_ok(result, 201)['status'] == 'success'
