"""Long answers are streamed in chunks, short ones sent whole with a
Content-Length, and no fetch from the database holds more than one chunk
and a row, whatever the size of the answer."""
import logging

import pytest

from balance_api.web import streaming
from balance_api.storage.db import database
from helpers import FORM, assert_ok

CHUNK = 3
COUNTS = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1, 4 * CHUNK + 2]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(streaming, 'FETCH_ROWS', CHUNK)


class _CountingCursor:
    def __init__(self, cursor, sizes):
        self._cursor = cursor
        self._sizes = sizes

    def fetchall(self):
        rows = self._cursor.fetchall()
        self._sizes.append(len(rows))
        return rows

    def fetchmany(self, size):
        rows = self._cursor.fetchmany(size)
        self._sizes.append(len(rows))
        return rows

    def __iter__(self):
        rows = list(self._cursor)
        self._sizes.append(len(rows))
        return iter(rows)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


@pytest.fixture
def count_fetches(monkeypatch, app):
    """From the call on, record how many rows each fetch from the
    application's database returned."""
    def start():
        sizes = []
        db = database.obj
        execute = db.execute_sql
        monkeypatch.setattr(db, 'execute_sql', lambda *args, **kwargs: _CountingCursor(
            execute(*args, **kwargs), sizes))
        return sizes
    return start


def _users_in_scrambled_order(count):
    # 7 is coprime with 97: distinct ids, not created in ascending order.
    return [(i * 7) % 97 + 1 for i in range(count)]


def _assert_sent_as(result, count, fetches):
    """Whole with a Content-Length up to one chunk; streamed without beyond."""
    if count <= CHUNK:
        assert int(result.headers['content-length']) == len(result.content)
    else:
        assert 'content-length' not in result.headers
    assert fetches and max(fetches) <= CHUNK + 1, fetches


@pytest.mark.parametrize('count', COUNTS)
def test_balances_arrive_complete_in_id_order(client, make_user, count_fetches, count):
    users = _users_in_scrambled_order(count)
    for uid in users:
        make_user(uid, str(uid))
    fetches = count_fetches()
    result = client.simulate_get('/balance')
    assert assert_ok(result) == [{'user_id': uid, 'balance': '%d.00' % uid}
                                 for uid in sorted(users)]
    _assert_sent_as(result, count, fetches)


@pytest.mark.parametrize('count', COUNTS)
def test_history_arrives_complete_in_id_order(client, make_user, count_fetches, count):
    users = _users_in_scrambled_order(count)
    for uid in users:
        make_user(uid)
    fetches = count_fetches()
    result = client.simulate_get('/history')
    rows = assert_ok(result)
    assert [(row['operation'], row['receiver_id']) for row in rows] == [
        ('user_add', uid) for uid in users]
    assert [row['id'] for row in rows] == sorted({row['id'] for row in rows})
    _assert_sent_as(result, count, fetches)


@pytest.mark.parametrize('count', COUNTS)
def test_one_users_history_arrives_complete_in_id_order(client, make_user, count_fetches,
                                                        count):
    make_user(2, '1')  # rows of someone else, before and after
    if count:
        make_user(1)
    for cents in range(1, count):
        answer = client.simulate_put('/balance/1', headers=FORM,
                                     body='operation=add&balance=0.%02d' % cents)
        assert answer.status_code == 200, answer.text
        client.simulate_put('/balance/2', headers=FORM, body='operation=add&balance=1')
    fetches = count_fetches()
    result = client.simulate_get('/history/uid=1')
    rows = assert_ok(result)
    expected = [('user_add', '0.00')] + [('balance_add', '0.%02d' % cents)
                                         for cents in range(1, count)]
    assert [(row['operation'], row['sum']) for row in rows] == expected[:count]
    assert all(row['receiver_id'] == 1 for row in rows)
    assert [row['id'] for row in rows] == sorted({row['id'] for row in rows})
    _assert_sent_as(result, count, fetches)


@pytest.mark.parametrize('count', [2 * CHUNK, 2 * CHUNK + 1])
def test_a_streamed_answer_reads_no_further_than_its_last_rows(client, make_user, count_fetches,
                                                               count):
    for uid in range(1, count + 1):
        make_user(uid)
    fetches = count_fetches()
    assert len(assert_ok(client.simulate_get('/balance'))) == count
    # The probe, then whole chunks until one comes back short, which was the last.
    assert fetches == [CHUNK + 1] + [CHUNK] * (count // CHUNK) + [count % CHUNK]


def test_a_stream_that_fails_part_way_is_logged_and_cut_off(client, make_user, caplog):
    for uid in range(1, 2 * CHUNK + 2):
        make_user(uid)

    def fail():
        raise RuntimeError('the worker is going away')

    streaming.report_progress_to(fail)
    try:
        with caplog.at_level(logging.ERROR, logger=streaming.__name__):
            with pytest.raises(RuntimeError, match='the worker is going away'):
                client.simulate_get('/balance')
    finally:
        streaming.report_progress_to(None)
    [record] = [r for r in caplog.records if r.name == streaming.__name__]
    assert record.getMessage() == 'streamed response failed part way'
    assert record.exc_info[0] is RuntimeError
    # The stream let go of its connection: the database takes writes again.
    make_user(2 * CHUNK + 2)


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_a_long_answer_on_postgresql_is_read_from_a_server_side_cursor(client, make_user):
    # A client-side cursor would hold every row in the worker's memory at once.
    for uid in range(1, 2 * CHUNK + 2):
        make_user(uid)
    db = database.obj
    cursors_open = []
    streaming.report_progress_to(lambda: cursors_open.append(
        [row[0] for row in db.execute_sql('SELECT name FROM pg_cursors')]))
    try:
        rows = assert_ok(client.simulate_get('/balance'))
    finally:
        streaming.report_progress_to(None)
    assert len(rows) == 2 * CHUNK + 1
    # One check after each of the three chunks.
    assert cursors_open == [['stream']] * 3
