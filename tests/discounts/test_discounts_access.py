"""The keys' refusals on the existing clients' routes, each with its code and in their
envelope, changing nothing; create-key grants the discount permits."""
import datetime
import subprocess
import sys

import pytest

import discounts_helpers
from balance_api.auth import keys, permits
from balance_api.auth.models import ApiKey
from balance_api.discounts.models import DiscountAudit, DiscountCode
from balance_api.storage.db import database
from conftest import ROOT
from discounts_helpers import CLAIM, GENERATE, user_key
from gunicorn_server import bearer
from helpers import ERRORS


def _everything():
    with database.connection_context():
        return (list(DiscountCode.select().order_by(DiscountCode.id).tuples()),
                list(DiscountAudit.select().order_by(DiscountAudit.id).tuples()))


def _key(name, key_permits, uid=None, expires_on=None, revoked=False):
    token = user_key(uid, name=name, key_permits=key_permits)
    with database.connection_context():
        if expires_on is not None:
            ApiKey.update(expires_on=expires_on).where(ApiKey.name == name).execute()
        if revoked:
            keys.revoke_key(database.obj, name)
    return token


def _envelope(result, code):
    status, message = ERRORS[code]
    assert result.status_code == status, (code, result.status_code, result.text)
    assert result.json == {'code': str(code), 'data': '', 'message': message,
                           'status': 'error'}
    if code < 706:
        assert result.headers['WWW-Authenticate'] == 'Bearer'
    else:
        assert 'WWW-Authenticate' not in result.headers


@pytest.fixture
def brand(client, make_user):
    make_user(1)
    discounts_helpers.generate(client, 1, 3)


def test_generate_refuses_every_bad_key_in_the_envelope(anonymous, brand):
    others = [name for name in permits.ALL
              if name not in (permits.DISCOUNT_CODES_GENERATE, permits.ADMIN)]
    expired = datetime.date.today() - datetime.timedelta(days=2)
    cases = [
        ({}, 701),
        ({'Authorization': 'Basic dXNlcjpwYXNz'}, 702),
        ({'X-Client-Authorization': 'not a token'}, 702),
        (bearer('A' * 43), 703),
        (bearer(_key('revoked', [permits.ADMIN], revoked=True)), 704),
        (bearer(_key('expired', [permits.ADMIN], expires_on=expired)), 705),
        (bearer(_key('others', others)), 706),
    ]
    before = _everything()
    for credentials, code in cases:
        _envelope(anonymous.simulate_post(GENERATE, headers=credentials,
                                          json={'brand_id': 1, 'number_of_codes': 2}), code)
    assert _everything() == before


def test_get_code_refuses_every_bad_secret_in_the_envelope(anonymous, brand):
    expired = datetime.date.today() - datetime.timedelta(days=2)
    others = [name for name in permits.ALL
              if name not in (permits.DISCOUNT_CODES_GET, permits.ADMIN)]
    cases = [
        (CLAIM % (1, '', 1), None, 701),
        (CLAIM % (1, 'short', 1), None, 702),
        (CLAIM % (1, 'A' * 43, 1), None, 703),
        (CLAIM % (1, _key('revoked', [permits.ADMIN], uid=1, revoked=True), 1), None, 704),
        (CLAIM % (1, _key('expired', [permits.ADMIN], uid=1, expires_on=expired), 1), None, 705),
        (CLAIM % (1, _key('others', others, uid=1), 1), None, 706),
        (CLAIM % (1, _key('good', [permits.DISCOUNT_CODES_GET], uid=1), 1),
         _key('header', [permits.ADMIN]), 702),
    ]
    before = _everything()
    for path, header_token, code in cases:
        result = anonymous.simulate_get(path, headers=bearer(header_token) if header_token
                                        else None)
        _envelope(result, code)
    assert _everything() == before


def test_the_permit_alone_is_enough(anonymous, brand):
    token = _key('only-get', [permits.DISCOUNT_CODES_GET], uid=1)
    assert anonymous.simulate_get(CLAIM % (1, token, 1)).json['status'] == 'success'
    token = _key('only-generate', [permits.DISCOUNT_CODES_GENERATE])
    assert anonymous.simulate_post(GENERATE, headers=bearer(token), json={
        'brand_id': 1, 'number_of_codes': 1}).status_code == 201


def test_create_key_grants_the_discount_permits(database_url):
    env = {'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'}
    made = subprocess.run(
        [sys.executable, '-m', 'balance_api', 'create-key', '--name', 'shop-codes', '--uid', '5',
         '--permits', '%s,%s' % (permits.DISCOUNT_CODES_GET, permits.DISCOUNT_CODES_GENERATE)],
        cwd=ROOT, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    listed = subprocess.run([sys.executable, '-m', 'balance_api', 'list-keys'], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert 'Discount:Api:Codes:Get,Discount:Api:Codes:Generate' in listed.stdout
