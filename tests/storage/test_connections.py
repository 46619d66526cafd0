"""Database connections between requests.

By default a request checks a connection out of the pool and back in. A
sync gunicorn worker keeps its connection from one request to the next
(``balance_api.web.middleware.keep_connections``), checked before each request
as the pool would check it.
"""
import threading
import time

import pytest

from balance_api import create_app
from balance_api.config import Settings
from balance_api.storage.db import database, open_database
from balance_api.web.middleware import keep_connections
from helpers import admin_client

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}


@pytest.fixture
def kept():
    keep_connections(True)
    yield
    keep_connections(False)


def _deposit(client, uid, amount, **kwargs):
    return client.simulate_put('/balance/%d' % uid, headers=FORM,
                               body='operation=add&balance=%s' % amount, **kwargs)


def _sessions(url, application_name):
    """The backend pids of the sessions a service opened with ``application_name``."""
    admin = open_database(url)
    with admin.connection_context():
        pids = [row[0] for row in admin.execute_sql(
            'SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid',
            (application_name,))]
    admin.close_all()
    return pids


def _end_sessions(url, application_name):
    """What a database restart or an administrator does to idle sessions."""
    admin = open_database(url)
    with admin.connection_context():
        admin.execute_sql('SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity '
                          'WHERE application_name = %s', (application_name,))
    admin.close_all()


def _balance_seen_elsewhere(url, uid):
    admin = open_database(url)
    with admin.connection_context():
        balance = admin.execute_sql('SELECT balance FROM account WHERE id = %s',
                                    (uid,)).fetchone()[0]
    admin.close_all()
    return str(balance)


def _service(postgres_url, name, **query):
    url = postgres_url + '?' + '&'.join(['application_name=' + name] +
                                        ['%s=%s' % item for item in query.items()])
    app = create_app(Settings(database_url=url))
    return admin_client(app, database.obj, 'admin-' + name)


def test_a_kept_connection_serves_the_next_request(postgres_url, kept):
    client = _service(postgres_url, 'kept_connection_test')
    assert client.simulate_post('/user', headers=FORM, body='uid=910001').status_code == 201
    first = _sessions(postgres_url, 'kept_connection_test')
    assert _deposit(client, 910001, '10.00').status_code == 200
    assert client.simulate_get('/balance/910001').json['balance'] == '10.00'
    assert len(first) == 1
    assert _sessions(postgres_url, 'kept_connection_test') == first
    # Between requests the thread still holds it: nothing went back to the pool.
    assert not database.is_closed()


def test_a_kept_connection_the_server_ended_is_replaced(postgres_url, kept):
    client = _service(postgres_url, 'ended_connection_test')
    assert client.simulate_post('/user', headers=FORM, body='uid=910002').status_code == 201
    assert _deposit(client, 910002, '10.00').status_code == 200

    _end_sessions(postgres_url, 'ended_connection_test')

    result = _deposit(client, 910002, '5.00')
    assert result.status_code == 200, result.text
    assert result.json == {'user_id': 910002, 'balance': '15.00'}
    history = client.simulate_get('/history/uid=910002')
    assert history.status_code == 200, history.text
    assert [row['operation'] for row in history.json] == ['user_add', 'balance_add', 'balance_add']


def test_a_kept_connection_older_than_the_stale_timeout_is_replaced(postgres_url, kept):
    client = _service(postgres_url, 'stale_connection_test', stale_timeout=1)
    assert client.simulate_post('/user', headers=FORM, body='uid=910003').status_code == 201
    first = _sessions(postgres_url, 'stale_connection_test')
    time.sleep(1.5)
    assert _deposit(client, 910003, '1.00').status_code == 200
    second = _sessions(postgres_url, 'stale_connection_test')
    assert len(first) == len(second) == 1
    assert first != second


def test_a_kept_connection_left_in_a_transaction_is_not_reused_as_is(postgres_url, kept):
    client = _service(postgres_url, 'dirty_connection_test')
    assert client.simulate_post('/user', headers=FORM, body='uid=910004').status_code == 201
    # Something between two requests opened a transaction on the kept connection.
    database.connection().cursor().execute('BEGIN')

    assert _deposit(client, 910004, '7.00').status_code == 200
    assert _balance_seen_elsewhere(postgres_url, 910004) == '7.00'


def test_threads_beyond_the_pool_size_all_get_a_connection(database_url):
    app = create_app(Settings(database_url=database_url, pool_size=2))
    client = admin_client(app, database.obj)
    uids = list(range(920001, 920009))
    for uid in uids:
        assert client.simulate_post('/user', headers=FORM, body='uid=%d' % uid).status_code == 201
    statuses = []

    def customer(uid):
        for _ in range(5):
            statuses.append(_deposit(client, uid, '1.00').status_code)
            statuses.append(client.simulate_get('/balance/%d' % uid).status_code)

    threads = [threading.Thread(target=customer, args=(uid,)) for uid in uids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 80
    for uid in uids:
        assert client.simulate_get('/balance/%d' % uid).json['balance'] == '5.00'
