"""Database connections between requests.

A single-threaded server (``wsgi.multithread`` false, as in a sync gunicorn
worker and in falcon.testing) keeps its connection from one request to the
next; a threaded one hands it back to the pool after every request.
"""
import threading

import falcon.testing

from balance_api import create_app
from balance_api.config import Settings
from balance_api.db import open_database

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}


def _deposit(client, uid, amount, **kwargs):
    return client.simulate_put('/balance/%d' % uid, headers=FORM,
                               body='operation=add&balance=%s' % amount, **kwargs)


def _end_other_sessions(url):
    """What a database restart or an administrator does to idle sessions."""
    admin = open_database(url)
    with admin.connection_context():
        ended = admin.execute_sql(
            'SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity '
            'WHERE datname = current_database() AND pid <> pg_backend_pid()').fetchone()[0]
    admin.close_all()
    return ended


def test_a_kept_connection_the_server_ended_is_replaced(postgres_url):
    client = falcon.testing.TestClient(create_app(Settings(database_url=postgres_url)))
    assert client.simulate_post('/user', headers=FORM, body='uid=910001').status_code == 201
    assert _deposit(client, 910001, '10.00').status_code == 200

    assert _end_other_sessions(postgres_url) >= 1

    result = _deposit(client, 910001, '5.00')
    assert result.status_code == 200, result.text
    assert result.json == {'user_id': 910001, 'balance': '15.00'}
    history = client.simulate_get('/history/uid=910001')
    assert history.status_code == 200, history.text
    assert [row['operation'] for row in history.json] == ['user_add', 'balance_add', 'balance_add']


def test_threads_beyond_the_pool_size_all_get_a_connection(database_url):
    app = create_app(Settings(database_url=database_url, pool_size=2))
    client = falcon.testing.TestClient(app)
    threaded = {'wsgi.multithread': True}
    uids = list(range(920001, 920009))
    for uid in uids:
        assert client.simulate_post('/user', headers=FORM, body='uid=%d' % uid,
                                    extras=threaded).status_code == 201
    statuses = []

    def customer(uid):
        for _ in range(5):
            statuses.append(_deposit(client, uid, '1.00', extras=threaded).status_code)
            statuses.append(client.simulate_get('/balance/%d' % uid,
                                                extras=threaded).status_code)

    threads = [threading.Thread(target=customer, args=(uid,)) for uid in uids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 80
    for uid in uids:
        assert client.simulate_get('/balance/%d' % uid).json['balance'] == '5.00'
