"""CORS: off by default; CORS_ORIGINS opens the API to the pages of the origins it lists."""
import falcon.testing
import pytest

from balance_api import create_app
from balance_api.config import Settings
from conftest import FORM
from gunicorn_server import bearer
from helpers import assert_error, assert_ok, snapshot

SHOP = 'https://shop.example.com'
ADMIN_PAGE = 'http://localhost:3000'
ELSEWHERE = 'https://evil.example.net'


def _cors_headers(result):
    return {name: text for name, text in result.headers.items()
            if name.lower().startswith('access-control-')}


def _preflight(client, path, origin, method='PUT',
               headers='authorization, content-type, idempotency-key'):
    return client.simulate_options(path, headers={
        'Origin': origin, 'Access-Control-Request-Method': method,
        'Access-Control-Request-Headers': headers})


@pytest.fixture
def open_to_shop(database_url, signing_key_file, admin_token):
    """The API with CORS_ORIGINS naming two origins, in-process, without a key
    (built after the admin key's application: the models use the last one built)."""
    app = create_app(Settings(database_url=database_url, signing_key_file=signing_key_file,
                              cors_origins=(SHOP, ADMIN_PAGE)))
    return falcon.testing.TestClient(app)


def test_off_by_default(client, anonymous):
    assert not _cors_headers(client.simulate_get('/health', headers={'Origin': SHOP}))
    assert not _cors_headers(client.simulate_get('/balance', headers={'Origin': SHOP}))
    assert not _cors_headers(_preflight(anonymous, '/transfer', SHOP))


def test_a_preflight_from_a_listed_origin_needs_no_key_and_changes_nothing(open_to_shop):
    before = snapshot()
    for origin in (SHOP, ADMIN_PAGE):
        result = _preflight(open_to_shop, '/transfer', origin)
        assert result.status_code == 200, result.text
        assert result.headers['Access-Control-Allow-Origin'] == origin
        assert 'PUT' in result.headers['Access-Control-Allow-Methods']
        assert result.headers['Access-Control-Allow-Headers'] == (
            'authorization, content-type, idempotency-key')
        assert int(result.headers['Access-Control-Max-Age']) > 0
        # Keys travel in a header: no cookies, so no credentials.
        assert 'Access-Control-Allow-Credentials' not in result.headers
        assert 'Origin' in result.headers['Vary']
    # Admin-only and user-bound routes too: the preflight tells only the methods.
    result = _preflight(open_to_shop, '/balance/{uid}'.format(uid=3), SHOP, method='GET')
    assert result.status_code == 200 and result.headers['Access-Control-Allow-Origin'] == SHOP
    assert snapshot() == before


def test_an_unlisted_origin_gets_no_cors_header(open_to_shop, admin_token):
    for origin in (ELSEWHERE, SHOP + ':8443', SHOP.replace('https', 'http'), 'null'):
        assert not _cors_headers(_preflight(open_to_shop, '/transfer', origin)), origin
        result = open_to_shop.simulate_get('/balance', headers={
            'Origin': origin, **bearer(admin_token)})
        assert result.status_code == 200
        assert not _cors_headers(result), origin


def test_answers_to_a_listed_origin_name_it_and_expose_the_request_id(
        open_to_shop, admin_token):
    headers = {'Origin': SHOP, **bearer(admin_token)}
    result = open_to_shop.simulate_post('/user', headers={**headers, **FORM}, body='uid=5')
    assert_ok(result, 201)
    assert result.headers['Access-Control-Allow-Origin'] == SHOP
    exposed = {name.strip().lower()
               for name in result.headers['Access-Control-Expose-Headers'].split(',')}
    assert {'x-request-id', 'idempotent-replayed'} <= exposed
    # A refusal too, so the page can read why.
    refused = open_to_shop.simulate_get('/balance/5', headers={'Origin': SHOP})
    assert_error(refused, 701)
    assert refused.headers['Access-Control-Allow-Origin'] == SHOP
    assert 'www-authenticate' in refused.headers['Access-Control-Expose-Headers'].lower()


def test_a_request_without_origin_gets_no_cors_header(open_to_shop):
    assert not _cors_headers(open_to_shop.simulate_get('/health'))


def test_options_without_a_key_states_only_the_methods(anonymous):
    result = anonymous.simulate_options('/transfer')
    assert result.status_code == 200
    assert 'PUT' in result.headers['Allow']
    assert not result.content


@pytest.mark.parametrize('text, origins', [
    (None, ()),
    ('', ()),
    (SHOP, (SHOP,)),
    (' %s , %s ,%s' % (SHOP, ADMIN_PAGE, SHOP), (SHOP, ADMIN_PAGE)),
    ('http://127.0.0.1:8080', ('http://127.0.0.1:8080',)),
])
def test_cors_origins_setting(text, origins):
    environ = {} if text is None else {'CORS_ORIGINS': text}
    assert Settings.from_env(environ).cors_origins == origins


@pytest.mark.parametrize('text', ['*', SHOP + '/', SHOP + '/app', 'shop.example.com',
                                  'https://*.example.com', 'ftp://files.example.com'])
def test_cors_origins_are_origins_never_a_wildcard_or_a_path(text):
    with pytest.raises(ValueError, match='CORS_ORIGINS'):
        Settings.from_env({'CORS_ORIGINS': text})


def test_a_preflight_needs_no_database():
    """A preflight is answered from the route alone: with the database out of
    reach it still answers, where a request for data cannot."""
    unreachable = 'postgresql://postgres@127.0.0.1:1/balance_api_nowhere'
    app = create_app(Settings(database_url=unreachable, cors_origins=(SHOP,)))
    client = falcon.testing.TestClient(app)
    result = _preflight(client, '/transfer', SHOP)
    assert result.status_code == 200, result.text
    assert result.headers['Access-Control-Allow-Origin'] == SHOP
    assert_error(client.simulate_get('/balance/1', headers={'Origin': SHOP}), 531)
