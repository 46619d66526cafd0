"""History by uid costs what it returns, not what the journal holds.

On a journal large enough for a plan that reads the whole journal to look
cheap, the statements the service runs for a uid (``history.select``) are
explained, as the server plans them for the values given (a custom plan)
and as a prepared statement plans them for any values (a generic plan, what
a prepared statement settles on): the account's postings must come from an
index scan bounded by the account, joined in a nested loop to their entries
by primary key, with no sequential scan, merge or hash join anywhere.

The journal is written in bulk, straight into the tables: the plans depend
only on its size and shape (one transfer per entry, one account on a side of
every entry, so it holds half of all postings).
"""
import datetime
import json

import pytest

from balance_api.money.history import HistoryQuery, select
from balance_api.storage import pg
from balance_api.storage.db import database, open_database
from balance_api.web.streaming import FETCH_ROWS

only_postgresql = pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)

ENTRIES = 100000
USERS = 1000
BUSY = USERS + 1
ORDINARY = 7
FIRST_DAY = datetime.datetime(2024, 1, 1)

# Run with no parameters given, yet through the driver: a percent sign is %%.
JOURNAL = """
INSERT INTO account (id, balance, last_hash, created_at)
SELECT g, 0, repeat('0', 64), timestamp '2024-01-01' FROM generate_series(1, {busy}) g;
INSERT INTO journal_entry (id, created_at, operation, sender_id, receiver_id, sum,
                           transaction_description)
SELECT g, timestamp '2024-01-01' + g * interval '1 minute', 'balance_transfer',
       CASE WHEN g %% 2 = 0 THEN {busy} ELSE 1 + g %% {users} END,
       CASE WHEN g %% 2 = 0 THEN 1 + g %% {users} ELSE {busy} END,
       1.00, md5(g::text)
  FROM generate_series(1, {entries}) g;
INSERT INTO posting (journal_id, account_id, amount, balance_after, created_at, hash)
SELECT j.id, leg.account_id, leg.amount, 0, j.created_at, md5(j.id::text) || md5(leg.account_id::text)
  FROM journal_entry j
 CROSS JOIN LATERAL (VALUES (j.sender_id, -j.sum), (j.receiver_id, j.sum)) AS leg (account_id, amount)
 ORDER BY j.id;
SELECT setval('journal_entry_id_seq', {entries});
""".format(busy=BUSY, users=USERS, entries=ENTRIES)


@pytest.fixture
def journal(database_url):
    db = open_database(database_url)
    with db.connection_context():
        db.execute_sql(JOURNAL)
        # As autovacuum leaves a journal once its rows are a little older:
        # statistics, and pages marked all-visible (VACUUM runs outside a
        # transaction, which peewee's autocommit mode gives).
        for table in ('account', 'journal_entry', 'posting'):
            db.execute_sql('VACUUM ANALYZE ' + table)
    yield db
    with db.connection_context():
        db.execute_sql('TRUNCATE posting, journal_entry RESTART IDENTITY')
        db.execute_sql('DELETE FROM account WHERE id <> 0')
    db.close_all()


def _postings(db, uid):
    return [row[0] for row in db.execute_sql(
        'SELECT journal_id FROM posting WHERE account_id = %s ORDER BY journal_id', (uid,))]


def _days(day, count):
    start = (FIRST_DAY + datetime.timedelta(days=day)).date()
    return start, start + datetime.timedelta(days=count - 1)


def _queries(db):
    """What the service asks for, by name: the first run of an answer (at most
    FETCH_ROWS + 1 rows), and the streamed rest of a long one (no cap)."""
    ordinary, busy = _postings(db, ORDINARY), _postings(db, BUSY)
    # The busy account is on a side of every entry: half of all postings.
    assert len(busy) == ENTRIES and len(ordinary) == ENTRIES // USERS
    start, end = _days(30, 2)
    first = FETCH_ROWS + 1
    return {
        'uid': (HistoryQuery(uid=ORDINARY), first),
        'uid, streamed': (HistoryQuery(uid=ORDINARY), None),
        'uid+limit': (HistoryQuery(uid=ORDINARY, limit=10), first),
        'uid+after_id+limit': (HistoryQuery(uid=ORDINARY, after_id=ordinary[50], limit=10), first),
        'uid+dates': (HistoryQuery(uid=ORDINARY, date_start=start, date_end=end), first),
        'busy': (HistoryQuery(uid=BUSY), first),
        'busy, streamed': (HistoryQuery(uid=BUSY), None),
        'busy+limit': (HistoryQuery(uid=BUSY, limit=10), first),
        'busy+after_id+limit': (HistoryQuery(uid=BUSY, after_id=busy[len(busy) // 2], limit=10),
                                first),
        'busy+dates': (HistoryQuery(uid=BUSY, date_start=start, date_end=end), first),
    }


def _nodes(plan):
    yield plan
    for child in plan.get('Plans', ()):
        yield from _nodes(child)


def _explain(db, sql, params):
    plan = db.execute_sql('EXPLAIN (FORMAT JSON) ' + sql, params).fetchone()[0]
    # psycopg2 decodes the json column itself.
    return json.loads(plan) if isinstance(plan, str) else plan


def _custom_plan(db, sql, params):
    return _explain(db, sql, params)


def _generic_plan(db, sql, params):
    name, prepare, execute = pg._preparable[sql]
    db.execute_sql('SET plan_cache_mode = force_generic_plan')
    db.execute_sql(prepare)
    try:
        return _explain(db, execute, params)
    finally:
        db.execute_sql('DEALLOCATE ' + name)
        db.execute_sql('RESET plan_cache_mode')


def _check(plan, dates):
    """The plan reads the account's postings by index, in a range bounded by
    the account, and each one's entry by primary key in a nested loop."""
    root = plan[0]['Plan']
    nodes = list(_nodes(root))
    types = [node['Node Type'] for node in nodes]
    assert 'Seq Scan' not in types, types
    assert 'Hash Join' not in types and 'Merge Join' not in types, types
    postings = [node for node in nodes if node.get('Relation Name') == 'posting']
    entries = [node for node in nodes if node.get('Relation Name') == 'journal_entry']
    assert len(postings) == 1 and len(entries) == 1, types
    posting = index = postings[0]
    entry = entries[0]
    if dates:
        # Just the postings of those days, in a range of their index, read
        # one by one or, when there are many, as a bitmap of that range.
        if posting['Node Type'] == 'Bitmap Heap Scan':
            index, = posting['Plans']
            assert index['Node Type'] == 'Bitmap Index Scan', posting
        else:
            assert posting['Node Type'] in ('Index Scan', 'Index Only Scan'), posting
        assert index['Index Name'] == 'posting_account_id_created_at', posting
        assert 'created_at >=' in index['Index Cond'], posting
        assert 'created_at <' in index['Index Cond'], posting
    else:
        # In journal id order straight from the index: nothing to sort.
        assert posting['Node Type'] in ('Index Scan', 'Index Only Scan'), posting
        assert posting['Index Name'] == 'posting_account_id_journal_id', posting
        assert 'Sort' not in types, types
    assert '(account_id = ' in index['Index Cond'], posting
    assert entry['Node Type'] == 'Index Scan', entry
    assert entry['Index Name'] == 'journal_entry_pkey', entry
    assert entry['Index Cond'] == '(id = p.journal_id)', entry
    loops = [node for node in nodes if node['Node Type'] == 'Nested Loop'
             and posting in _nodes(node['Plans'][0]) and entry in _nodes(node['Plans'][1])]
    assert len(loops) == 1, types


@only_postgresql
def test_history_by_uid_is_planned_as_an_index_range_on_the_account(journal):
    db = journal
    with db.connection_context():
        settled = db.execute_sql('SELECT max(id) FROM journal_entry').fetchone()[0]
        failures = []
        for name, (query, at_most) in _queries(db).items():
            sql, params = select(query, db, at_most, settled)
            assert sql in pg._preparable, name
            dates = query.date_start is not None
            for kind, explain in (('custom', _custom_plan), ('generic', _generic_plan)):
                plan = explain(db, sql, params)
                try:
                    _check(plan, dates)
                except AssertionError as exc:
                    failures.append('%s (%s plan): %s\n%s' % (
                        name, kind, exc, json.dumps(plan, indent=1)[:3000]))
        assert not failures, '\n\n'.join(failures)


SQLITE_JOURNAL = [
    'WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {busy}) '
    "INSERT INTO account (id, balance, last_hash, created_at) "
    "SELECT n, '0.00', '{genesis}', '2024-01-01 00:00:00' FROM g",
    'WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {entries}) '
    'INSERT INTO journal_entry (id, created_at, operation, sender_id, receiver_id, sum, '
    'transaction_description) '
    "SELECT n, datetime('2024-01-01', '+' || n || ' minutes'), 'balance_transfer', "
    'CASE WHEN n % 2 = 0 THEN {busy} ELSE 1 + n % {users} END, '
    "CASE WHEN n % 2 = 0 THEN 1 + n % {users} ELSE {busy} END, '1.00', hex(n) FROM g",
    'INSERT INTO posting (journal_id, account_id, amount, balance_after, created_at, hash) '
    "SELECT id, sender_id, '-1.00', '0.00', created_at, hex(id) FROM journal_entry "
    "UNION ALL SELECT id, receiver_id, '1.00', '0.00', created_at, hex(id) FROM journal_entry",
    'ANALYZE',
]


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
def test_on_sqlite_history_by_uid_searches_indexes_only(database_url):
    db = open_database(database_url)
    # The query is built from the models, which are bound to the proxy.
    database.initialize(db)
    entries = 20000
    with db.connection_context():
        for statement in SQLITE_JOURNAL:
            db.execute_sql(statement.format(busy=BUSY, users=USERS, entries=entries,
                                            genesis='0' * 64))
        ordinary = [row[0] for row in db.execute_sql(
            'SELECT journal_id FROM posting WHERE account_id = ? ORDER BY journal_id',
            (ORDINARY,))]
        start, end = _days(3, 2)
        queries = {
            'uid': HistoryQuery(uid=ORDINARY),
            'uid+limit': HistoryQuery(uid=ORDINARY, limit=10),
            'uid+after_id+limit': HistoryQuery(uid=ORDINARY, after_id=ordinary[5], limit=10),
            'uid+dates': HistoryQuery(uid=ORDINARY, date_start=start, date_end=end),
            'busy+after_id+limit': HistoryQuery(uid=BUSY, after_id=entries // 2, limit=10),
        }
        for name, query in queries.items():
            sql, params = select(query, db, FETCH_ROWS + 1)
            steps = [row[3] for row in db.execute_sql('EXPLAIN QUERY PLAN ' + sql, params)]
            # SEARCH is a range of an index; SCAN would read a whole table.
            assert not [step for step in steps if step.startswith('SCAN')], (name, steps)
            index = 'created_at' if query.date_start else 'journal_id'
            assert any('INDEX posting_account_id_%s (account_id=?' % index in step
                       for step in steps), (name, steps)
            assert any('USING INTEGER PRIMARY KEY (rowid=?)' in step for step in steps), (
                name, steps)
            if not query.date_start:
                # The index gives the order: nothing is sorted.
                assert not [step for step in steps if 'TEMP B-TREE' in step], (name, steps)
