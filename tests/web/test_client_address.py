"""Behind a trusted proxy, the logs name the client the proxy served."""
import logging

import falcon.testing
import pytest

from balance_api import create_app
from balance_api.config import Settings, trusted_proxies_setting
from balance_api.web.middleware import client_address
from helpers import assert_error

TRUSTED = frozenset(['127.0.0.1', '10.0.0.2'])


@pytest.mark.parametrize('remote, forwarded, client', [
    ('127.0.0.1', None, '127.0.0.1'),
    ('127.0.0.1', '203.0.113.7', '203.0.113.7'),
    # Only what trusted proxies appended is believed: the client may send anything.
    ('127.0.0.1', '198.51.100.9, 203.0.113.7', '203.0.113.7'),
    ('127.0.0.1', '203.0.113.7, 10.0.0.2', '203.0.113.7'),
    ('127.0.0.1', '10.0.0.2, 127.0.0.1', '10.0.0.2'),
    # An untrusted peer's header is ignored.
    ('198.51.100.1', '203.0.113.7', '198.51.100.1'),
    ('127.0.0.1', ' , ', '127.0.0.1'),
])
def test_the_client_is_the_nearest_untrusted_hop(remote, forwarded, client):
    assert client_address(remote, forwarded, TRUSTED) == client


def test_trusted_proxies_come_from_the_environment():
    defaults = Settings().trusted_proxies
    assert defaults == ('127.0.0.1', '::1')
    assert Settings.from_env({}).trusted_proxies == defaults
    assert Settings.from_env({'TRUSTED_PROXIES': '10.0.0.2, 10.0.0.3'}).trusted_proxies == (
        '10.0.0.2', '10.0.0.3')
    assert trusted_proxies_setting('', defaults) == ()


@pytest.mark.parametrize('remote, client', [('127.0.0.1', '203.0.113.7'),
                                            ('198.51.100.1', '198.51.100.1')])
def test_a_refused_key_is_logged_with_the_real_client(database_url, caplog, remote, client):
    anonymous = falcon.testing.TestClient(create_app(Settings(database_url=database_url)))
    with caplog.at_level(logging.WARNING, logger='balance_api.auth'):
        result = anonymous.simulate_get('/balance/1', remote_addr=remote,
                                        headers={'X-Forwarded-For': '203.0.113.7'})
    assert_error(result, 701)
    [line] = [record.getMessage() for record in caplog.records
              if record.name == 'balance_api.auth']
    assert ' from %s: 701 ' % client in line, line
