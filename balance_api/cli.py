"""What every command shares: its exit statuses, one-line errors, and the database it opens.

Exit statuses (the README lists them):

* 0: done;
* 1: the command ran and found a problem (``verify``, ``reconcile``,
  ``verify-export``) or refused what it was asked (a key name taken, a file
  that exists);
* 2: bad usage: arguments, settings in the environment;
* 3: the database: unreachable, missing, not a database, or its schema is
  not the one this version expects.

A database a command opens is named on standard error first, so a job run
from the wrong directory or with the wrong environment says where it looks.
Only ``migrate`` and ``serve`` may create a SQLite file; every other
command refuses a database that does not exist yet instead of working on a
new, empty ledger.
"""
import argparse
import os
import sys
import time
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import peewee

from .storage.db import database, is_postgres, open_database, schema_status

PROG = 'python -m balance_api'

REFUSED = 1
USAGE = 2
DATABASE = 3


class CommandError(Exception):
    """A command cannot go on; ``main`` prints the message as one line and exits."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


class CommandLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (the exit status stays 2).

    Subcommands' parsers are made of the same class, so they do the same.
    """

    def error(self, message):
        command = self.prog[len(PROG):].strip() if self.prog.startswith(PROG) else ''
        where = '%s: ' % command if command else ''
        self.exit(USAGE, 'balance_api: error: %s%s (see: %s --help)\n'
                  % (where, message, self.prog))


def fail(message):
    print('balance_api: error: %s' % message, file=sys.stderr)


def run(handler, settings, args):
    """Run a command's handler; its CommandError, or a database lost on the
    way, becomes one line on standard error and the matching exit status."""
    try:
        return handler(settings, args)
    except CommandError as exc:
        fail(str(exc))
        return exc.status
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        fail('the database failed: %s' % _one_line(exc))
        return DATABASE
    except KeyboardInterrupt:
        fail('interrupted')
        return 130


def _one_line(exc):
    return ' '.join(str(exc).split()) or type(exc).__name__


def masked_url(url):
    """``url`` with any password in it replaced by ``***``."""
    parts = urlparse(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        credentials, _, host = netloc.rpartition('@')
        netloc = '%s:***@%s' % (credentials.split(':', 1)[0], host)
    fields = parse_qsl(query, keep_blank_values=True)
    if any(name.lower() == 'password' for name, _ in fields):
        query = urlencode([(name, '***' if name.lower() == 'password' else value)
                           for name, value in fields], safe='*')
    if (netloc, query) == (parts.netloc, parts.query):
        # Unchanged, and unparsed: urlunparse would drop the empty host of sqlite:///.
        return url
    return urlunparse(parts._replace(netloc=netloc, query=query))


def describe(settings, db, environ=None):
    """The one line naming the database a command uses."""
    env = os.environ if environ is None else environ
    if isinstance(db, peewee.SqliteDatabase):
        shown = 'sqlite:///%s' % os.path.abspath(db.database)
    else:
        shown = masked_url(settings.database_url)
    default = '' if env.get('DATABASE_URL') else ' (DATABASE_URL is not set: the default)'
    return 'balance_api: database %s%s' % (shown, default)


def _announce(settings, line):
    # Under LOG_FORMAT=json (serve's logs) every line on standard error is a JSON object.
    if getattr(settings, 'log_format', 'text') == 'json':
        from .web.access_log import iso_time, json_line
        line = json_line({'time': iso_time(time.time()), 'level': 'INFO',
                          'logger': 'balance_api', 'message': line})
    print(line, file=sys.stderr, flush=True)


def open_for_command(settings, *, may_create=False, check_schema=True):
    """The database of ``DATABASE_URL``, named on standard error, reachable,
    existing (unless ``may_create``: a SQLite file only; PostgreSQL databases
    are made by their administrator) and, when ``check_schema``, migrated to
    exactly this version's migrations. Bound to the models' proxy; returns it
    with no connection open. Raises CommandError otherwise."""
    try:
        db = open_database(settings.database_url, pool_size=settings.pool_size,
                           busy_timeout=settings.sqlite_busy_timeout)
    except (ValueError, KeyError) as exc:
        raise CommandError('DATABASE_URL: %s' % exc, USAGE) from None
    _announce(settings, describe(settings, db))
    probe = db
    if isinstance(db, peewee.SqliteDatabase):
        _check_sqlite_file(db.database, may_create)
        if os.path.exists(db.database):
            # Without the service's pragmas: turning WAL on writes to the file,
            # which may be empty or no ledger at all.
            probe = peewee.SqliteDatabase(db.database, timeout=settings.sqlite_busy_timeout)
    try:
        probe.connect()
    except peewee.DatabaseError as exc:
        raise _connect_error(db, exc) from None
    try:
        status = schema_status(probe)
    except peewee.DatabaseError as exc:
        raise CommandError('cannot read %s: %s' % (_name(db), _one_line(exc)), DATABASE) from None
    finally:
        probe.close()
    if check_schema:
        require_current(status)
    database.initialize(db)
    return db


def require_current(status):
    """Refuse a schema that is not exactly this version's migrations."""
    if status.unknown:
        raise CommandError(
            'the database has migrations this version does not ship (%s): a newer version '
            'migrated it; run that version, or roll it back with that version first'
            % ', '.join(status.unknown), DATABASE)
    if status.pending:
        what = ('it has no schema yet' if not status.applied else
                'pending migrations %s' % ', '.join(status.pending))
        raise CommandError('the database is not migrated (%s): run %s migrate first'
                           % (what, PROG), DATABASE)


def _check_sqlite_file(path, may_create):
    if os.path.exists(path):
        if os.path.isdir(path):
            raise CommandError('the SQLite database %s is a directory' % path, DATABASE)
        return
    if not may_create:
        raise CommandError('the SQLite database %s does not exist (check DATABASE_URL and the '
                           'working directory; %s migrate creates one)'
                           % (os.path.abspath(path), PROG), DATABASE)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError('cannot create the SQLite database %s: the directory %s does not '
                           'exist' % (os.path.abspath(path), parent), DATABASE)


def _name(db):
    return os.path.abspath(db.database) if isinstance(db, peewee.SqliteDatabase) else (
        'the database %s' % db.database)


def _connect_error(db, exc):
    text = _one_line(exc)
    if is_postgres(db) and 'does not exist' in text:
        return CommandError('the PostgreSQL database %s does not exist on that server (it is '
                            'created with createdb, then %s migrate); the server says: %s'
                            % (db.database, PROG, text), DATABASE)
    return CommandError('cannot connect to %s: %s' % (_name(db), text), DATABASE)
