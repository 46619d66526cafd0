"""The database: built from a URL, bound late, and migrated under a lock.

Models bind to ``database``, a proxy that ``create_app`` (or a command)
initializes. Nothing here connects at import time, so gunicorn workers
open their own connections after the fork.
"""
import contextlib
import fcntl
import os
import select
from typing import NamedTuple
from urllib.parse import urlparse

import peewee
from psycopg2.extensions import ISOLATION_LEVEL_READ_COMMITTED, TRANSACTION_STATUS_IDLE
from playhouse import db_url
from playhouse.migrations import Migration, MigrationError, Runner
from playhouse.postgres_ext import PooledPostgresqlExtDatabase

database = peewee.DatabaseProxy()

MIGRATIONS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'migrations')

# Any constant works; it names this service's migration lock on the server.
_MIGRATION_LOCK_ID = 0x62616C616E6365


class PostgresDatabase(PooledPostgresqlExtDatabase):
    """PostgreSQL with a per-process pool, and no round trip spent on plumbing.

    Checkout: the stock pool sends ``SELECT 1`` on every checkout, one
    round trip per request. A connection idle in the pool has nothing to
    read unless the server ended it (a restart, a terminated backend), in
    which case its farewell message or end-of-file is waiting on the
    socket. So a readable socket means a dead connection, found with one
    non-blocking select().

    BEGIN: it travels with the transaction's first statement, in the same
    message ("BEGIN ...; SELECT ..."), instead of costing a round trip of
    its own. The server still runs it first, so the transaction is exactly
    the same; a transaction that sends no statement sends no BEGIN and no
    COMMIT either.
    """

    def _is_closed(self, conn):
        if conn.closed:
            return True
        try:
            readable, _, _ = select.select([conn], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def begin(self, isolation_level=None):
        level = self._isolation_level if isolation_level is None else isolation_level
        statement = 'BEGIN'
        if level:
            statement += ' TRANSACTION ISOLATION LEVEL ' + self._adapter.isolation_level_str(level)
        self._state.pending_begin = (self._state.conn, statement)

    def _take_pending_begin(self):
        """The BEGIN not sent yet on the current connection, if any (and forget it)."""
        pending = getattr(self._state, 'pending_begin', None)
        self._state.pending_begin = None
        if pending is None or pending[0] is not self._state.conn:
            return None
        return pending[1]

    def _execute_cursor(self, sql, params, **cursor_options):
        begin = self._take_pending_begin()
        if begin is not None:
            if cursor_options.get('named_cursor'):
                # A server-side cursor wraps its query in DECLARE: BEGIN goes alone.
                with peewee.__exception_wrapper__:
                    self.cursor().execute(begin)
            else:
                sql = begin + '; ' + sql
        return super()._execute_cursor(sql, params, **cursor_options)

    def kept_connection_usable(self):
        """Whether the calling thread's open connection may serve another
        request: the checks of a pool checkout and check-in (not closed by
        the server, see ``_is_closed``; younger than ``stale_timeout``) and
        no transaction left open on it."""
        conn = self._state.conn
        if self.in_transaction() or self._is_closed(conn):
            return False
        if conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
            return False
        pooled = self._in_use.get(self.conn_key(conn))
        return not (self._stale_timeout and pooled is not None
                    and self._is_stale(pooled.timestamp))

    def commit(self):
        if self._take_pending_begin() is None:
            super().commit()

    def rollback(self):
        if self._take_pending_begin() is None:
            super().rollback()


def open_database(url, *, pool_size=4, busy_timeout=10.0):
    """Build (without connecting) the database object a URL names.

    ``sqlite:///path.db`` or ``postgresql://user@host:port/db``, as
    ``playhouse.db_url`` reads them; query-string parameters become
    connection parameters.
    """
    scheme = urlparse(url).scheme
    params = db_url.parse(url)
    if scheme in ('postgres', 'postgresql', 'postgres+pool', 'postgresql+pool'):
        params.setdefault('max_connections', pool_size)
        params.setdefault('stale_timeout', 300)
        params.setdefault('timeout', 10)
        # Waits end well before gunicorn's 30 s worker timeout, as a 503.
        params.setdefault('options', '-c lock_timeout=10s -c statement_timeout=20s')
        # The locking and idempotency logic rely on READ COMMITTED: a waiting
        # INSERT ... ON CONFLICT sees the row its rival committed.
        params.setdefault('isolation_level', ISOLATION_LEVEL_READ_COMMITTED)
        return PostgresDatabase(autoconnect=False, **params)
    if scheme == 'sqlite':
        if params['database'] == ':memory:':
            raise ValueError('an in-memory SQLite database is private to one connection; use a file')
        params.setdefault('timeout', busy_timeout)
        return peewee.SqliteDatabase(
            autoconnect=False,
            pragmas={
                'journal_mode': 'wal',
                # FULL: a committed transfer survives power loss, not only a crash.
                'synchronous': 'full',
                'foreign_keys': 1,
            },
            **params)
    raise ValueError('unsupported DATABASE_URL scheme %r (use sqlite or postgresql)' % scheme)


def open_for_request(db):
    """Make sure the calling thread has a usable connection for a request.

    A connection the thread kept from its previous request (see
    ``balance_api.web.middleware.DatabaseConnection``) is used again if it
    passes the checks the pool makes; otherwise it goes back to the pool,
    which rolls it back or discards it, and a connection is checked out.
    """
    if not db.is_closed():
        if db.in_transaction():
            return  # a caller's transaction is using it
        if not isinstance(db, PostgresDatabase) or db.kept_connection_usable():
            return
        db.close()
    db.connect()


def is_postgres(db):
    return isinstance(db, peewee.PostgresqlDatabase)


def write_transaction(db):
    """A transaction that holds the write lock on what it reads.

    On SQLite the lock is taken at BEGIN (IMMEDIATE), so a transaction that
    reads a balance and then writes it cannot fail half way with "database
    is locked"; other writers wait on the busy timeout. On PostgreSQL rows
    are locked with SELECT ... FOR UPDATE by the caller.

    A nested call joins the enclosing transaction instead of opening a
    savepoint (two round trips saved). That is safe because the code run
    inside checks every rule before its first write: a refusal raised there
    leaves nothing to undo, and any other failure rolls back the whole
    enclosing transaction. Code that must survive a failed statement and
    carry on opens its own savepoint (``db.atomic()``).
    """
    if db.transaction_depth() > 0:
        return contextlib.nullcontext()
    if isinstance(db, peewee.SqliteDatabase):
        return db.atomic('IMMEDIATE')
    return db.atomic()


# A transaction that reads one snapshot of every table and writes nothing.
READ_ONLY_SNAPSHOT = 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY'


@contextlib.contextmanager
def read_snapshot(db):
    """One transaction whose reads all see the same moment: on PostgreSQL
    REPEATABLE READ and READ ONLY; on SQLite a deferred transaction, whose
    snapshot starts with its first read."""
    with db.atomic():
        if is_postgres(db):
            db.execute_sql(READ_ONLY_SNAPSHOT)
        yield


@contextlib.contextmanager
def _migration_lock(db):
    """Serialize migrations between processes started at the same time."""
    if is_postgres(db):
        db.execute_sql('SELECT pg_advisory_lock(%s)', (_MIGRATION_LOCK_ID,))
        try:
            yield
        finally:
            db.execute_sql('SELECT pg_advisory_unlock(%s)', (_MIGRATION_LOCK_ID,))
    else:
        with open(db.database + '.migrate-lock', 'a') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(db, directory=MIGRATIONS_DIR):
    """Apply pending migrations; returns the names applied. Safe to race."""
    with db.connection_context(), _migration_lock(db):
        # The runner reads what is applied only after the lock is held, so a
        # second process sees the first one's work and applies nothing.
        return Runner(db, directory).up()


# playhouse.migrations.Runner records applied migrations in this table.
HISTORY_TABLE = 'schema_migration'

# ``migrate --down-to`` target that reverts every migration.
NO_MIGRATION = 'zero'


def shipped_migrations(directory=MIGRATIONS_DIR):
    """The names of the migrations this code ships, in the order they apply."""
    return [found.name for found in Migration.load_directory(directory)]


class SchemaStatus(NamedTuple):
    # Each applied migration's name and when it was applied, oldest first.
    applied: list
    # Shipped, not applied yet.
    pending: list
    # Applied, but not shipped by this code (a newer version migrated the database).
    unknown: list

    @property
    def current(self):
        """The schema is exactly the one the code expects."""
        return not self.pending and not self.unknown


def schema_status(db, shipped=None):
    """Compare what the database has applied with ``shipped`` (default: the
    migrations directory). Needs an open connection; reads, never writes."""
    shipped = shipped_migrations() if shipped is None else shipped
    applied = {}
    if db.table_exists(HISTORY_TABLE):
        applied = dict(db.execute_sql('SELECT name, applied FROM %s' % HISTORY_TABLE).fetchall())
    in_order = sorted(applied.items(), key=lambda item: (_number(item[0]), item[0]))
    return SchemaStatus(applied=in_order,
                        pending=[name for name in shipped if name not in applied],
                        unknown=[name for name, _ in in_order if name not in shipped])


def _number(name):
    digits = name[:len(name) - len(name.lstrip('0123456789'))]
    return int(digits) if digits else -1


def resolve_migration(name, shipped=None):
    """The shipped migration ``name`` names: its whole name or its number
    (``0001``), or ``NO_MIGRATION``. Raises ``MigrationError`` for others."""
    shipped = shipped_migrations() if shipped is None else shipped
    if name == NO_MIGRATION or name in shipped:
        return name
    by_number = [found for found in shipped if name.isdigit() and _number(found) == int(name)]
    if len(by_number) == 1:
        return by_number[0]
    raise MigrationError('no migration is named %r (choose %s, or %s to revert them all)'
                         % (name, ', '.join(shipped), NO_MIGRATION))


def roll_back(db, down_to, directory=MIGRATIONS_DIR):
    """Run ``down()`` of every applied migration after ``down_to`` (a name
    ``resolve_migration`` returned), newest first, each in its own
    transaction, under the migration lock; returns the names reverted."""
    with db.connection_context(), _migration_lock(db):
        runner = Runner(db, directory)
        # Read once the lock is held, as migrate does.
        newer = applied_after(db, down_to, [found.name for found in runner.migrations()])
        if not newer:
            return []
        # Runner.down reverts back through its target, the oldest of ``newer``.
        return runner.down(newer[0])


def applied_after(db, down_to, shipped=None):
    """The applied migrations ``roll_back(db, down_to)`` reverts, oldest first."""
    names = [name for name, _ in schema_status(db, shipped).applied]
    if down_to == NO_MIGRATION:
        return names
    return [name for name in names if _number(name) > _number(down_to)]
