"""The hot paths on PostgreSQL, written out in SQL.

Built through the ORM, these statements cost the worker more CPU than the
server spends running them (about 0.65 ms against 0.57 ms per transfer, see
bench/README.md, "Where the time goes"), so they are kept here as text,
built once per shape, with every value a bound parameter. SQLite and
everything else go through the models; the tables and columns here are the
ones ``balance_api.money.models`` describes.

Deposits, withdrawals and transfers are one statement: a call of the
server-side function ``ledger_post`` (migrations 0003 and 0004), which
locks, checks and writes. Creating and deleting a user costs three: one
locks the account (or inserts it), one reserves the journal entry's id and
time after that lock, and one writes the entry, its postings and the new
account state at once, as data-modifying CTEs (foreign keys are checked at
the end of the statement, when the entry exists).

Statements whose best plan does not depend on their values are prepared
once per connection, so the server plans them once, not once per request.
"""
import functools
from typing import NamedTuple

from ..storage.pg import preparable, run
from .amounts import format_amount

# -- reads ---------------------------------------------------------------

_BALANCE = preparable(
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


def settled_id(db):
    """The largest journal id below which nothing is in flight any more.

    Every entry with an id up to it is committed or rolled back for good
    (``journal_settled_id``, migration 0004, waits for the writers that
    could still hold one), so a query run afterwards, in a statement of its
    own, sees either all of them or none. Run it outside a transaction: the
    locks it waits with are released when its transaction ends.
    """
    return run(db, _SETTLED).fetchone()[0]


_SETTLED = preparable('SELECT journal_settled_id()')


# History by uid: the account's postings in journal id order, from the
# (account_id, journal_id) index (migration 0009), which also bounds them by
# after_id and the settled id, so LIMIT stops the scan; with dates, the
# (account_id, created_at) index reads just the postings of those days,
# sorted by journal id. Each posting's entry is then read by primary key: the
# entry is a LATERAL subquery that OFFSET 0 keeps from being merged into the
# outer query, so it can only be the inner side of a nested loop, run once per
# posting the LIMIT lets through, and no estimate can make it a merge or hash
# join that reads the journal from its start. An account has at most one
# posting per entry (a transfer's two legs are on different accounts; every
# other operation has one leg on a user), so the rows are the entries where
# the user is sender or receiver, once each.
_UID_SOURCE = (
    'posting p CROSS JOIN LATERAL (SELECT id, created_at, receiver_id, sum, operation,'
    ' transaction_description, sender_id FROM journal_entry'
    ' WHERE journal_entry.id = p.journal_id OFFSET 0) j')


def history(uid=None, start=None, end=None, after_id=None, limit=None, settled_id=None):
    """``(sql, params)`` of the journal rows matching the filters, in id
    order, one column of JSON text each (see ``balance_api.money.history``).

    With a uid, the account's postings are read in journal id order
    through their (account_id, journal_id) index, each joined to its entry
    by primary key, so the work grows with the rows returned, whatever the
    values and the journal's size: such a statement is prepared. Without
    one, the best plan depends on how wide the dates are, so the server
    plans each request. Only rows up to
    ``settled_id`` (``settled_id()``) are read: a row above it may still
    have an uncommitted neighbour below it, which a client continuing from
    this answer's last id would never see.
    """
    conditions, params = [], []
    if uid is not None:
        source = _UID_SOURCE
        moment, key = 'p.created_at', 'p.journal_id'
        conditions.append('p.account_id = %s')
        params.append(uid)
    else:
        source, moment, key = 'journal_entry j', 'j.created_at', 'j.id'
    if start is not None:
        conditions.append(moment + ' >= %s')
        params.append(start)
    if end is not None:
        conditions.append(moment + ' < %s')
        params.append(end)
    if after_id:
        conditions.append(key + ' > %s')
        params.append(after_id)
    if settled_id is not None:
        conditions.append(key + ' <= %s')
        params.append(settled_id)
    sql = 'SELECT ' + _HISTORY_ROW + ' FROM ' + source
    if conditions:
        sql += ' WHERE ' + ' AND '.join(conditions)
    sql += ' ORDER BY ' + key
    if limit is not None:
        sql += ' LIMIT %s'
        params.append(limit)
    if uid is not None:
        sql = preparable(sql)
    return sql, params


# -- changes -------------------------------------------------------------

class LockedAccount(NamedTuple):
    id: int
    balance: object  # Decimal
    last_hash: str
    deleted_at: object  # datetime or None
    last_posted_at: object  # datetime or None


@functools.lru_cache(maxsize=None)
def _lock_sql(count):
    return preparable(
        'SELECT id, balance, last_hash, deleted_at, last_posted_at FROM account '
        'WHERE id IN (%s) ORDER BY id FOR UPDATE' % ', '.join(['%s'] * count))


def lock_accounts(db, user_ids):
    """Lock the existing accounts among ``user_ids``, in ascending id order;
    returns ``{id: LockedAccount}``."""
    ids = sorted(set(user_ids))
    return {row[0]: LockedAccount(*row) for row in run(db, _lock_sql(len(ids)), ids)}


# The writer lock, then the id, then the database's clock (migration 0004).
_RESERVE = preparable('SELECT id, created_at FROM journal_next_entry()')


def reserve_entry(db):
    """``(id, time)`` of the journal entry about to be written.

    Call it after the last lock wait: from here to the commit, readers of
    the journal wait for this transaction (``settled_id``).
    """
    return run(db, _RESERVE).fetchone()


_ENTRY = ('entry AS (INSERT INTO journal_entry '
          '(id, created_at, operation, sender_id, receiver_id, sum, transaction_description, '
          'key_name) VALUES (%s, %s, %s, %s, %s, %s, %s, %s))')
_POSTINGS = ('legs AS (INSERT INTO posting '
             '(journal_id, account_id, amount, balance_after, created_at, hash) VALUES %s)')
_POSTING_ROW = '(%s, %s, %s, %s, %s, %s)'
# Columns a change may also set on the accounts it touches (deleting a user).
_EXTRA_COLUMNS = frozenset(['deleted_at', 'email', 'msisdn'])


@functools.lru_cache(maxsize=None)
def _write_sql(postings, accounts, extra_columns):
    assignments = ['balance = changed.balance', 'last_hash = changed.last_hash',
                   'last_posted_at = %s']
    assignments += ['%s = %%s' % column for column in extra_columns]
    rows = ['(%s::bigint, %s::numeric, %s::text)'] + ['(%s, %s, %s)'] * (accounts - 1)
    return preparable(
        'WITH %s, %s UPDATE account SET %s FROM (VALUES %s) AS changed (id, balance, '
        'last_hash) WHERE account.id = changed.id'
        % (_ENTRY, _POSTINGS % ', '.join([_POSTING_ROW] * postings),
           ', '.join(assignments), ', '.join(rows)))


def write_entry(db, entry, postings, changes, extra=None):
    """Write a journal entry, its postings and the accounts' new states.

    ``entry`` is ``(id, created_at, operation, sender_id, receiver_id,
    amount, description, key_name)``; ``postings`` are ``(journal_id, account_id,
    amount, balance_after, created_at, hash)``; ``changes`` are
    ``(account_id, balance, last_hash)`` (at least one), each account's
    last_posted_at becoming the entry's time; ``extra`` sets more columns on
    every changed account. Raises peewee's exceptions; the
    failing table is named in the driver's diagnostics (``failed_table``).
    """
    extra = extra or {}
    if not _EXTRA_COLUMNS.issuperset(extra):
        raise ValueError('cannot set %s' % sorted(set(extra) - _EXTRA_COLUMNS))
    columns = tuple(sorted(extra))
    entry_id, created_at, operation, sender_id, receiver_id, amount, description, key_name = entry
    params = [entry_id, created_at, operation, sender_id, receiver_id,
              format_amount(amount), description, key_name]
    for journal_id, account_id, delta, after, moment, digest in postings:
        params += [journal_id, account_id, format_amount(delta),
                   None if after is None else format_amount(after), moment, digest]
    params.append(created_at)
    params += [extra[column] for column in columns]
    for account_id, balance_after, last_hash in changes:
        params += [account_id, format_amount(balance_after), last_hash]
    run(db, _write_sql(len(postings), len(changes), columns), params)


_POST = preparable(
    'SELECT refusal, sender_balance, receiver_balance FROM ledger_post(%s, %s, %s, %s, %s, %s)')


def post(db, operation, sender_id, receiver_id, amount, description, key_name=None):
    """Run one deposit, withdrawal or transfer on the server (migrations 0003
    and 0004; the entry's time is the database's, taken after the locks;
    ``key_name`` names the API key that made it, migration 0007).

    Returns ``(refusal, sender_balance, receiver_balance)``: refusal is 0 or
    the API error code of the rule that refused the change (nothing written
    then); a deposit's or withdrawal's sender balance is None. Raises
    peewee's exceptions, as ``write_entry`` does.
    """
    return run(db, _POST, (operation, sender_id, receiver_id, amount, description,
                           key_name)).fetchone()
