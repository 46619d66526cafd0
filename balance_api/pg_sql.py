"""The hot paths on PostgreSQL, written out in SQL.

Built through the ORM, these statements cost the worker more CPU than the
server spends running them (about 0.65 ms against 0.57 ms per transfer, see
bench/README.md, "Where the time goes"), so they are kept here as text,
built once per shape, with every value a bound parameter. SQLite and
everything else go through the models; the tables and columns here are the
ones ``balance_api.models`` describes.

Deposits, withdrawals and transfers are one statement: a call of the
server-side function ``ledger_post`` (migration 0003), which locks, checks
and writes. Creating and deleting a user costs two: one locks the account
and reserves the id of the journal entry, the other writes the entry, its
postings and the new account state at once, as data-modifying CTEs
(foreign keys are checked at the end of the statement, when the entry
exists).

Statements whose best plan does not depend on their values are prepared
once per connection, so the server plans them once, not once per request.
"""
import functools
import hashlib
import re
import weakref
from typing import NamedTuple

from .money import format_amount

# -- running statements --------------------------------------------------

# Prepared statements by their text: name, PREPARE and EXECUTE forms.
_preparable = {}
# The names prepared on each open connection (forgotten with the connection).
_prepared_on = weakref.WeakKeyDictionary()


def _preparable_statement(sql):
    """Mark ``sql`` (``%s`` for each parameter) as worth preparing; returns it."""
    if sql not in _preparable:
        count = sql.count('%s')
        numbers = iter(range(1, count + 1))
        name = 'balance_api_' + hashlib.sha256(sql.encode('utf-8')).hexdigest()[:16]
        text = re.sub('%s', lambda match: '$%d' % next(numbers), sql)
        arguments = '(%s)' % ', '.join(['%s'] * count) if count else ''
        _preparable[sql] = (name, 'PREPARE %s AS %s' % (name, text), 'EXECUTE ' + name + arguments)
    return sql


def run(db, sql, params=()):
    """Execute ``sql`` with ``params``; returns the cursor.

    A statement marked preparable is prepared the first time it runs on a
    connection (a round trip of its own, once), then executed by name.
    """
    statement = _preparable.get(sql)
    if statement is None:
        return db.execute_sql(sql, params)
    name, prepare, execute = statement
    prepared = _prepared_on.setdefault(db.connection(), set())
    if name not in prepared:
        db.execute_sql(prepare)
        prepared.add(name)
    return db.execute_sql(execute, params)


# -- reads ---------------------------------------------------------------

_BALANCE = _preparable_statement(
    'SELECT id, balance FROM account WHERE id = %s AND deleted_at IS NULL')


def balance(db, user_id):
    """``(user_id, balance)`` of a user that exists, else None."""
    return run(db, _BALANCE, (user_id,)).fetchone()


# A journal row as history shows it, in the order and form json.dumps gives
# it (non-ASCII characters aside, which stay unescaped).
_HISTORY_ROW = (
    """'{"id": ' || j.id"""
    """ || ', "date": "' || to_char(j.created_at, 'YYYY-MM-DD HH24:MI:SS')"""
    """ || '", "receiver_id": ' || j.receiver_id"""
    """ || ', "sum": "' || j.sum"""
    # A CHECK constraint keeps operations to five plain names.
    """ || '", "operation": "' || j.operation"""
    """ || '", "transaction_description": ' || to_json(j.transaction_description)"""
    """ || ', "sender_id": ' || j.sender_id || '}'""")


def history(uid=None, start=None, end=None, after_id=None, limit=None, paged=False):
    """``(sql, params)`` of the journal rows matching the filters, in id
    order, one column of JSON text each (see ``balance_api.history``).

    With a uid, the account's postings are read through their (account,
    created_at) index and joined to their entries, whatever the values:
    such a statement is prepared. Without one, the best plan depends on how
    wide the dates are, so the server plans each request. A ``paged`` read
    (one the client sent a limit or after_id for) returns only rows whose
    writing transaction is older than every transaction still running: ids
    are handed out before commit, and a page must not include a row whose
    smaller-id neighbour may still commit, or the next page (after_id = this
    page's last id) would never show that neighbour.
    """
    conditions, params = [], []
    if uid is not None:
        source, moment = 'journal_entry j JOIN posting p ON p.journal_id = j.id', 'p.created_at'
        conditions.append('p.account_id = %s')
        params.append(uid)
    else:
        source, moment = 'journal_entry j', 'j.created_at'
    if start is not None:
        conditions.append(moment + ' >= %s')
        params.append(start)
    if end is not None:
        conditions.append(moment + ' < %s')
        params.append(end)
    if after_id:
        conditions.append('j.id > %s')
        params.append(after_id)
    if paged:
        conditions.append('j.txid < pg_snapshot_xmin(pg_current_snapshot())')
    sql = 'SELECT ' + _HISTORY_ROW + ' FROM ' + source
    if conditions:
        sql += ' WHERE ' + ' AND '.join(conditions)
    sql += ' ORDER BY j.id'
    if limit is not None:
        sql += ' LIMIT %s'
        params.append(limit)
    if uid is not None:
        sql = _preparable_statement(sql)
    return sql, params


class ServerCursor:
    """A server-side cursor over ``sql``: declared together with its first
    fetch of ``rows`` rows, in one round trip (with the transaction's BEGIN,
    see ``balance_api.db``). It lives until the transaction ends."""

    def __init__(self, db, sql, params, rows):
        self.db = db
        self.pending = db.execute_sql(
            'DECLARE stream NO SCROLL CURSOR FOR ' + sql + '; ' + self._fetch(rows),
            params).fetchall()

    @staticmethod
    def _fetch(rows):
        return 'FETCH FORWARD %d FROM stream' % rows

    def fetchmany(self, rows):
        """The next rows: the first fetch's, then ``rows`` more per call."""
        if self.pending is not None:
            batch, self.pending = self.pending, None
            return batch
        return self.db.execute_sql(self._fetch(rows)).fetchall()


# -- changes -------------------------------------------------------------

class LockedAccount(NamedTuple):
    id: int
    balance: object  # Decimal
    last_hash: str
    deleted_at: object  # datetime or None


# The next journal id, taken once per statement (an InitPlan) and only after
# the transaction has its own id, in the order an INSERT would take them.
_NEXT_JOURNAL_ID = ("(SELECT nextval('journal_entry_id_seq') "
                    "WHERE pg_current_xact_id() IS NOT NULL)")
_RESERVE = _preparable_statement('SELECT ' + _NEXT_JOURNAL_ID)


@functools.lru_cache(maxsize=None)
def _lock_sql(count):
    return _preparable_statement(
        'SELECT id, balance, last_hash, deleted_at, %s FROM account '
        'WHERE id IN (%s) ORDER BY id FOR UPDATE'
        % (_NEXT_JOURNAL_ID, ', '.join(['%s'] * count)))


def lock_accounts(db, user_ids):
    """Lock the existing accounts among ``user_ids``, in ascending id order.

    Returns ``({id: LockedAccount}, reserved journal id)``.
    """
    ids = sorted(set(user_ids))
    rows = run(db, _lock_sql(len(ids)), ids).fetchall()
    accounts = {row[0]: LockedAccount(*row[:4]) for row in rows}
    return accounts, (rows[0][4] if rows else None)


def reserve_journal_id(db):
    """Reserve the id of the journal entry about to be written."""
    return run(db, _RESERVE).fetchone()[0]


_ENTRY = ('entry AS (INSERT INTO journal_entry '
          '(id, created_at, operation, sender_id, receiver_id, sum, transaction_description) '
          'VALUES (%s, %s, %s, %s, %s, %s, %s))')
_POSTINGS = ('legs AS (INSERT INTO posting '
             '(journal_id, account_id, amount, balance_after, created_at, hash) VALUES %s)')
_POSTING_ROW = '(%s, %s, %s, %s, %s, %s)'
# Columns a change may also set on the accounts it touches (deleting a user).
_EXTRA_COLUMNS = frozenset(['deleted_at', 'email', 'msisdn'])


@functools.lru_cache(maxsize=None)
def _write_sql(postings, accounts, extra_columns):
    assignments = ['balance = changed.balance', 'last_hash = changed.last_hash']
    assignments += ['%s = %%s' % column for column in extra_columns]
    rows = ['(%s::bigint, %s::numeric, %s::text)'] + ['(%s, %s, %s)'] * (accounts - 1)
    return _preparable_statement(
        'WITH %s, %s UPDATE account SET %s FROM (VALUES %s) AS changed (id, balance, '
        'last_hash) WHERE account.id = changed.id'
        % (_ENTRY, _POSTINGS % ', '.join([_POSTING_ROW] * postings),
           ', '.join(assignments), ', '.join(rows)))


def write_entry(db, entry, postings, changes, extra=None):
    """Write a journal entry, its postings and the accounts' new states.

    ``entry`` is ``(id, created_at, operation, sender_id, receiver_id,
    amount, description)``; ``postings`` are ``(journal_id, account_id,
    amount, balance_after, created_at, hash)``; ``changes`` are
    ``(account_id, balance, last_hash)`` (at least one); ``extra`` sets
    more columns on every changed account. Raises peewee's exceptions; the
    failing table is named in the driver's diagnostics (``failed_table``).
    """
    extra = extra or {}
    if not _EXTRA_COLUMNS.issuperset(extra):
        raise ValueError('cannot set %s' % sorted(set(extra) - _EXTRA_COLUMNS))
    columns = tuple(sorted(extra))
    entry_id, created_at, operation, sender_id, receiver_id, amount, description = entry
    params = [entry_id, created_at, operation, sender_id, receiver_id,
              format_amount(amount), description]
    for journal_id, account_id, delta, after, moment, digest in postings:
        params += [journal_id, account_id, format_amount(delta),
                   None if after is None else format_amount(after), moment, digest]
    params += [extra[column] for column in columns]
    for account_id, balance_after, last_hash in changes:
        params += [account_id, format_amount(balance_after), last_hash]
    run(db, _write_sql(len(postings), len(changes), columns), params)


_POST = _preparable_statement(
    'SELECT refusal, sender_balance, receiver_balance FROM ledger_post(%s, %s, %s, %s, %s, %s)')


def post(db, operation, sender_id, receiver_id, amount, description, created_at):
    """Run one deposit, withdrawal or transfer on the server (see migration 0003).

    Returns ``(refusal, sender_balance, receiver_balance)``: refusal is 0 or
    the API error code of the rule that refused the change (nothing written
    then); a deposit's or withdrawal's sender balance is None. Raises
    peewee's exceptions, as ``write_entry`` does.
    """
    return run(db, _POST, (operation, sender_id, receiver_id, amount, description,
                           created_at)).fetchone()


def failed_table(exc):
    """The table a (peewee-wrapped) psycopg2 error happened in, when the server says."""
    diag = getattr(getattr(exc, 'orig', None), 'diag', None)
    return getattr(diag, 'table_name', None)
