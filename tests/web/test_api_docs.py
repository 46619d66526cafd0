"""GET /openapi.json, /api/docs with its assets, /health and /ready."""
from html.parser import HTMLParser

from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

from balance_api import __version__
from helpers import ERRORS, assert_ok

ROUTES = {
    '/balance': {'get'},
    '/balance/{user_id}': {'get', 'put'},
    '/user': {'post'},
    '/balance_delete_user/{user_id}': {'delete'},
    '/transfer': {'put'},
    '/history': {'get'},
    '/points/{uid}/add': {'post'},
    '/points/{uid}/spend': {'post'},
    '/points/{uid}/balance': {'get'},
    '/user/{user_id}': {'put'},
    '/v3/{club}/transactions/points': {'post'},
    '/v3/{club}/transactions/points/by_member_id/{member_id}': {'get'},
    '/v3/{club}/transactions/points/by_msisdn/{msisdn}': {'get'},
    '/v3/{club}/transactions/points/by_email/{email}': {'get'},
    '/v3/{club}/transactions/points/events/{member_id}': {'get'},
    '/export': {'get'},
    '/export/manifest': {'get'},
    '/export/points': {'get'},
    '/export/points/manifest': {'get'},
    '/export/discounts': {'get'},
    '/export/discounts/manifest': {'get'},
    '/export/public-key': {'get'},
    '/discounts/api/v1.0/generate': {'post'},
    '/discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}': {'get'},
    '/discounts/{brand_id}/code': {'get'},
    '/discounts/{brand_id}/stats': {'get'},
    '/reconciliation': {'get'},
    '/health': {'get'},
    '/ready': {'get'},
    '/metrics': {'get'},
}
# The documentation itself, and the old clients' history form, whose query string
# travels as the path (GET /history/uid=1&date-start=...): the document offers
# GET /history for it.
NOT_DOCUMENTED = {'/openapi.json', '/api/docs', '/history/{query}'}
# The loyalty platform's batch is a JSON array, which no form can carry.
JSON_ONLY = {('/v3/{club}/transactions/points', 'post')}
METHODS = {'get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'}


def _refs(node):
    if isinstance(node, dict):
        for name, value in node.items():
            if name == '$ref':
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document, ref):
    assert ref.startswith('#/'), ref
    node = document
    for part in ref[2:].split('/'):
        node = node[part.replace('~1', '/').replace('~0', '~')]
    return node


def test_openapi_document_is_valid_openapi_3(client):
    result = client.simulate_get('/openapi.json')
    document = assert_ok(result)
    assert document['openapi'].startswith('3.')
    OPENAPI_30_VALIDATOR.validate(document)
    for ref in _refs(document):
        _resolve(document, ref)


def test_openapi_document_describes_every_route(app, client):
    document = assert_ok(client.simulate_get('/openapi.json'))
    paths = document['paths']
    assert {path: {m for m in item if m in METHODS} for path, item in paths.items()} == ROUTES
    assert set(app.permits_by_route()) - NOT_DOCUMENTED == set(ROUTES)
    for path, item in paths.items():
        templated = {part[1:-1] for part in path.split('/') if part.startswith('{')}
        declared = {p['name'] for p in item.get('parameters', []) if p['in'] == 'path'}
        assert templated == declared, path
        for method in ROUTES[path]:
            operation = item[method]
            assert operation['responses'], (path, method)
            if method in ('put', 'post'):
                content = operation['requestBody']['content']
                media_types = ({'application/json'} if (path, method) in JSON_ONLY else
                               {'application/x-www-form-urlencoded', 'application/json'})
                assert set(content) == media_types, (path, method)


def test_openapi_document_lists_every_error_code(client):
    description = assert_ok(client.simulate_get('/openapi.json'))['info']['description']
    for code, (status, message) in ERRORS.items():
        assert '| %d | %d | %s |' % (code, status, message) in description


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.styles = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'script' and attrs.get('src'):
            self.scripts.append(attrs['src'])
        if tag == 'link' and attrs.get('rel') == 'stylesheet':
            self.styles.append(attrs['href'])


def test_docs_page_serves_its_assets_locally(client):
    page = client.simulate_get('/api/docs')
    assert page.status_code == 200
    assert page.headers['content-type'].startswith('text/html')
    assert '/openapi.json' in page.text
    assets = _Assets()
    assets.feed(page.text)
    assert assets.scripts and assets.styles
    for url, kind in [(u, 'javascript') for u in assets.scripts] + [
            (u, 'css') for u in assets.styles]:
        assert url.startswith('/api/docs/static/'), url
        asset = client.simulate_get(url)
        assert asset.status_code == 200, url
        assert kind in asset.headers['content-type'], (url, asset.headers['content-type'])
        assert len(asset.content) > 1000, url


def test_health_and_ready(client):
    assert assert_ok(client.simulate_get('/health')) == {'status': 'ok', 'version': __version__}
    assert client.simulate_get('/ready').status_code == 200
