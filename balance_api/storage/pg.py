"""Running statements on PostgreSQL: prepared once per connection, and
server-side cursors that stream a result without holding it in memory.

Domains keep their SQL in a module of their own and run it through here.
"""
import hashlib
import re
import weakref

# Prepared statements by their text: name, PREPARE and EXECUTE forms.
_preparable = {}
# The names prepared on each open connection (forgotten with the connection).
_prepared_on = weakref.WeakKeyDictionary()


def preparable(sql):
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


class ServerCursor:
    """A server-side cursor over ``sql``: declared together with its first
    fetch of ``rows`` rows, in one round trip (with the transaction's BEGIN,
    see ``balance_api.storage.db``). It lives until the transaction ends."""

    def __init__(self, db, sql, params, rows, name='stream'):
        # ``name`` tells apart cursors open at once in one transaction (an
        # identifier chosen by the caller, never a client's text).
        if not re.fullmatch(r'[a-z_][a-z0-9_]{0,62}', name):
            raise ValueError('not a cursor name: %r' % name)
        self.db = db
        self.name = name
        self.pending = db.execute_sql(
            'DECLARE ' + name + ' NO SCROLL CURSOR FOR ' + sql + '; ' + self._fetch(rows),
            params).fetchall()

    def _fetch(self, rows):
        return 'FETCH FORWARD %d FROM %s' % (rows, self.name)

    def fetchmany(self, rows):
        """The next rows: the first fetch's, then ``rows`` more per call."""
        if self.pending is not None:
            batch, self.pending = self.pending, None
            return batch
        return self.db.execute_sql(self._fetch(rows)).fetchall()

    def close(self):
        """Close the cursor before its transaction ends (its name is free again)."""
        self.pending = None
        self.db.execute_sql('CLOSE ' + self.name)


def failed_table(exc):
    """The table a (peewee-wrapped) psycopg2 error happened in, when the server says."""
    diag = getattr(getattr(exc, 'orig', None), 'diag', None)
    return getattr(diag, 'table_name', None)
