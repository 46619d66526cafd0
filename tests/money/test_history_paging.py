"""Paging with after_id never skips or repeats a row, whatever the interleaving.

On PostgreSQL journal ids are handed out before commit, so a larger id can
commit while a smaller one is still in flight. The deterministic tests hold
row locks from other sessions to force exactly that order; the stress test
runs real writers against real gunicorn while a reader pages.
"""
import random
import threading
import time
import uuid
from decimal import Decimal

import psycopg2
import pytest

from balance_api.money import pg_sql
from balance_api.storage.db import open_database
from conftest import PG_URL
from helpers import add, assert_ok, transfer

only_postgresql = pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)


def _connect(url):
    connection = psycopg2.connect(url)
    connection.autocommit = False
    return connection


def _waiting_on_locks(admin, count, timeout=10):
    """Wait until ``count`` sessions of this database wait for a lock."""
    deadline = time.monotonic() + timeout
    cursor = admin.cursor()
    while time.monotonic() < deadline:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'")
        if cursor.fetchone()[0] >= count:
            return True
        time.sleep(0.02)
    return False


class _InThread:
    """A request run in a thread of its own, with its answer kept."""

    def __init__(self, call):
        self.answer = None
        self.thread = threading.Thread(target=self._run, args=(call,))
        self.thread.start()

    def _run(self, call):
        self.answer = call()

    def result(self, timeout=20):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), 'request did not finish'
        return self.answer


@only_postgresql
@pytest.mark.parametrize('first_page', ['?after_id=1&limit=100', ''])
def test_a_row_that_took_its_id_first_and_commits_last_is_not_skipped(
        client, make_user, database_url, first_page):
    for uid in (1, 2, 3):
        make_user(uid, '10.00')
    start = max(row['id'] for row in client.simulate_get('/history').json)
    first_page = first_page.replace('after_id=1', 'after_id=%d' % start)
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    holds_2, holds_0 = _connect(database_url), _connect(database_url)
    try:
        # A transfer to 2 claims its idempotency key, then waits for account 2.
        holds_2.cursor().execute('SELECT 1 FROM account WHERE id = 2 FOR UPDATE')
        transfer_call = _InThread(lambda: transfer(client, 1, 2, '1.00',
                                                   headers={'Idempotency-Key': uuid.uuid4().hex}))
        assert _waiting_on_locks(admin, 1)
        # A deposit to 3 takes the next journal id, then waits for account 0
        # (its posting's foreign key).
        holds_0.cursor().execute('SELECT 1 FROM account WHERE id = 0 FOR UPDATE')
        deposit_call = _InThread(lambda: add(client, 3, '2.00'))
        assert _waiting_on_locks(admin, 2)
        # The transfer goes on, takes the id after the deposit's and commits.
        holds_2.rollback()
        assert_ok(transfer_call.result())

        reader = _InThread(lambda: client.simulate_get('/history' + first_page))
        # The reader must not answer while a smaller id is in flight: it waits.
        reader.thread.join(0.5)
        holds_0.rollback()
        assert_ok(deposit_call.result())
        page = assert_ok(reader.result())
    finally:
        holds_2.close()
        holds_0.close()
        admin.close()

    operations = [(row['operation'], row['receiver_id']) for row in page
                  if row['id'] > start]
    assert operations == [('balance_add', 3), ('balance_transfer', 2)]
    last = page[-1]['id']
    assert assert_ok(client.simulate_get('/history?after_id=%d' % last)) == []


@only_postgresql
@pytest.mark.parametrize('where', ['another database', 'this database'])
def test_an_open_transaction_of_another_application_does_not_hold_pages_back(
        client, make_user, database_url, where):
    idle = _connect(PG_URL if where == 'another database' else database_url)
    try:
        cursor = idle.cursor()
        cursor.execute('SELECT pg_current_xact_id()')
        make_user(1, '5.00')
        page = assert_ok(client.simulate_get('/history?after_id=0&limit=100'))
        assert [row['operation'] for row in page] == ['user_add', 'balance_add']
    finally:
        idle.rollback()
        idle.close()


@only_postgresql
def test_a_row_whose_id_is_taken_after_the_reader_settled_is_not_skipped(
        client, make_user, database_url, monkeypatch):
    for uid in (1, 2, 3):
        make_user(uid, '10.00')
    start = max(row['id'] for row in client.simulate_get('/history').json)
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    holds_0 = _connect(database_url)
    deposits = []
    settled_id = pg_sql.settled_id

    def settle_then_interleave(db):
        settled = settled_id(db)
        if not deposits:
            # Between the reader learning how far the journal is settled and
            # its query: a deposit to 3 takes the next id, then waits for
            # account 0; a transfer takes the id after it and commits.
            holds_0.cursor().execute('SELECT 1 FROM account WHERE id = 0 FOR UPDATE')
            deposits.append(_InThread(lambda: add(client, 3, '2.00')))
            assert _waiting_on_locks(admin, 1)
            assert_ok(_InThread(lambda: transfer(client, 1, 2, '1.00')).result())
        return settled

    monkeypatch.setattr(pg_sql, 'settled_id', settle_then_interleave)
    try:
        page = assert_ok(client.simulate_get('/history?after_id=%d' % start))
        holds_0.rollback()
        assert_ok(deposits[0].result())
    finally:
        holds_0.close()
        admin.close()
    monkeypatch.undo()

    last = page[-1]['id'] if page else start
    rest = assert_ok(client.simulate_get('/history?after_id=%d' % last))
    assert [(row['operation'], row['receiver_id']) for row in page + rest] == [
        ('balance_add', 3), ('balance_transfer', 2)]


@only_postgresql
def test_an_entry_is_dated_after_the_locks_it_waited_for(client, make_user, database_url):
    make_user(1)
    holder = _connect(database_url)
    admin = psycopg2.connect(database_url)
    admin.autocommit = True
    try:
        cursor = holder.cursor()
        cursor.execute('SELECT 1 FROM account WHERE id = 1 FOR UPDATE')
        deposit = _InThread(lambda: add(client, 1, '1.00'))
        assert _waiting_on_locks(admin, 1)
        time.sleep(0.2)
        cursor.execute("SELECT clock_timestamp() AT TIME ZONE 'UTC'")
        released_at = cursor.fetchone()[0]
        holder.rollback()
        assert_ok(deposit.result())
        cursor.execute('SELECT created_at FROM posting WHERE account_id = 1 ORDER BY id DESC '
                       'LIMIT 1')
        assert cursor.fetchone()[0] > released_at
    finally:
        holder.close()
        admin.close()


def test_a_clock_behind_the_last_posting_still_dates_the_next_one_later(
        client, make_user, database_url):
    from balance_api.storage.db import database
    make_user(1, '3.00')
    make_user(2)
    future = '2100-01-01 00:00:00'
    with database.connection_context():
        database.execute_sql("UPDATE account SET last_posted_at = '%s' WHERE id = 1" % future)
    assert_ok(transfer(client, 1, 2, '1.00'))
    with database.connection_context():
        rows = database.execute_sql(
            'SELECT account_id, created_at FROM posting WHERE journal_id = '
            '(SELECT max(id) FROM journal_entry) ORDER BY account_id').fetchall()
    moments = [str(moment) for _, moment in rows]
    assert moments == ['2100-01-01 00:00:00.000001'] * 2, rows


# -- under load ----------------------------------------------------------------

USERS = [11, 12, 13, 14]


def _writer(server, seed, stop, answered):
    base = server.url
    rng = random.Random(seed)
    session = server.session()
    new_user = 100000 * (seed + 1)
    while not stop.is_set():
        choice = rng.random()
        headers = {'Idempotency-Key': uuid.uuid4().hex} if rng.random() < 0.5 else {}
        if choice < 0.55:
            sender, receiver = rng.sample(USERS, 2)
            answer = session.put(base + '/transfer', headers=headers, timeout=30, data={
                'sender_id': sender, 'receiver_id': receiver,
                'balance': str(Decimal(rng.randint(1, 500)) / 100)})
        elif choice < 0.9:
            answer = session.put(base + '/balance/%d' % rng.choice(USERS), headers=headers,
                                 timeout=30, data={'operation': rng.choice(['add', 'sub']),
                                                   'balance': str(rng.randint(1, 5))})
        else:
            new_user += 1
            answer = session.post(base + '/user', data={'uid': new_user}, headers=headers,
                                  timeout=30)
        answered.append(answer.status_code)


def test_paging_under_concurrent_writers_sees_every_row_once(server, database_url):
    http = server.session()
    base = server.url
    for uid in USERS:
        assert http.post(base + '/user', data={'uid': uid}).status_code == 201
        assert http.put(base + '/balance/%d' % uid,
                        data={'operation': 'add', 'balance': '100'}).status_code == 200
    stop, answered = threading.Event(), []
    writers = [threading.Thread(target=_writer, args=(server, seed, stop, answered))
               for seed in range(6)]
    for writer in writers:
        writer.start()
    seen, last, pages = [], 0, 0
    deadline = time.monotonic() + 6
    session = server.session()
    try:
        while time.monotonic() < deadline:
            page = session.get(base + '/history?after_id=%d&limit=%d'
                               % (last, random.choice([1, 7, 50])), timeout=30).json()
            pages += 1
            if page:
                seen.extend(row['id'] for row in page)
                last = page[-1]['id']
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    while True:
        page = session.get(base + '/history?after_id=%d&limit=500' % last, timeout=30).json()
        if not page:
            break
        seen.extend(row['id'] for row in page)
        last = page[-1]['id']

    everything = [row['id'] for row in session.get(base + '/history', timeout=30).json()]
    assert len(answered) > 100 and pages > 20, (len(answered), pages)
    assert sorted(set(seen)) == seen, 'a row was repeated or came out of order'
    assert seen == everything, 'rows were skipped: %s' % sorted(set(everything) - set(seen))[:20]

    # Every account's postings are in time order: ordering by time gives
    # the chain's order and the true running balance.
    db = open_database(database_url)
    with db.connection_context():
        postings = db.execute_sql('SELECT account_id, created_at, amount, balance_after '
                                  'FROM posting WHERE account_id <> 0 ORDER BY account_id, id'
                                  ).fetchall()
    by_account = {}
    for account_id, moment, amount, after in postings:
        by_account.setdefault(account_id, []).append((moment, Decimal(amount), Decimal(after)))
    for account_id, chain in by_account.items():
        moments = [moment for moment, _, _ in chain]
        assert moments == sorted(set(moments)), 'account %d: times out of order' % account_id
        running = Decimal('0')
        for _, amount, after in chain:
            running += amount
            assert after == running
