"""What the discount codes' tests share: users, their keys, generating codes."""
from balance_api.auth import permits
from balance_api.storage.db import database
from gunicorn_server import bearer, create_key_in
from helpers import assert_ok

GENERATE = '/discounts/api/v1.0/generate'
CLAIM = '/discounts/api/v1.0/get_code/%s/%s/%s'


def user_key(uid, name=None, key_permits=(permits.DISCOUNT_CODES_GET,)):
    """A key bound to ``uid``; returns its token."""
    return create_key_in(database.obj, name or 'user-%d' % uid, list(key_permits), uid=uid)


def generate(client, brand_id, number):
    """Generate codes through the existing clients' call (``client`` sends an admin key)."""
    answer = assert_ok(client.simulate_post(GENERATE, json={
        'brand_id': brand_id, 'number_of_codes': number}), 201)
    assert answer == {'code': '201', 'data': '',
                      'message': 'System generated discount codes successfully',
                      'status': 'success'}


def make_users(make_user, uids=(1, 2, 3, 4)):
    """Users, each with a key of its own bound to it: ``{uid: token}``."""
    return {uid: user_key(make_user(uid)) for uid in uids}


def claim(anonymous, uid, token, brand_id):
    """The existing clients' claim: the key in the path, no header."""
    return anonymous.simulate_get(CLAIM % (uid, token, brand_id))


def clean_claim(anonymous, token, brand_id, query=None):
    return anonymous.simulate_get('/discounts/%s/code' % brand_id, headers=bearer(token),
                                  query_string=query)
