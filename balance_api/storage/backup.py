"""An online, consistent copy of a SQLite database (``python -m balance_api backup``).

SQLite's backup API copies the database page by page. Asked for every page
in one step, it reads them all inside one read transaction: the copy is the
database as of one commit, and in WAL mode the service's writers go on
meanwhile (they wait for nothing; only checkpoints wait until the copy ends).

The copy is written under a temporary name next to the destination, made
durable, checked (``PRAGMA quick_check``) and only then given its name, so
a failed or interrupted backup never leaves a half-written file under the
name a restore would use. It is a single file in rollback-journal mode;
the service turns WAL back on when it opens it.
"""
import contextlib
import os
import sqlite3
import tempfile
from typing import NamedTuple


class BackupRefused(Exception):
    """The destination cannot be used: it exists, or it is the database itself."""


class BackupResult(NamedTuple):
    path: str
    pages: int
    bytes: int


def backup_sqlite(db, destination, replace=False):
    """Copy the SQLite database ``db`` (a peewee database, not connected) to
    the file ``destination``; an existing file is replaced only if
    ``replace``. Returns a BackupResult."""
    target = os.path.abspath(destination)
    if os.path.isdir(target):
        raise BackupRefused('%s is a directory; name the file to create' % target)
    if os.path.exists(target):
        if os.path.samefile(target, db.database):
            raise BackupRefused('%s is the database itself' % target)
        if not replace:
            raise BackupRefused('%s exists; it is replaced only with --force' % target)
    directory = os.path.dirname(target)
    handle, partial = tempfile.mkstemp(prefix='.%s.' % os.path.basename(target),
                                       suffix='.partial', dir=directory)
    os.close(handle)
    try:
        pages = _copy(db, partial)
        _fsync(partial)
        _give_name(partial, target, replace)
        _fsync(directory)
    finally:
        for leftover in (partial, partial + '-journal'):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
    return BackupResult(target, pages, os.path.getsize(target))


def _copy(db, path):
    copy = sqlite3.connect(path, isolation_level=None)
    try:
        with db.connection_context():
            # pages=-1: all in one step, so all from one snapshot.
            db.connection().backup(copy, pages=-1)
        copy.execute('PRAGMA journal_mode=DELETE')
        verdict = copy.execute('PRAGMA quick_check').fetchone()[0]
        if verdict != 'ok':
            raise sqlite3.DatabaseError('the copy fails its check: %s' % verdict)
        return copy.execute('PRAGMA page_count').fetchone()[0]
    finally:
        copy.close()


def _give_name(partial, target, replace):
    if replace:
        os.replace(partial, target)
        return
    # A link fails if the name was taken meanwhile: nothing is overwritten.
    try:
        os.link(partial, target)
    except FileExistsError:
        raise BackupRefused('%s exists; it is replaced only with --force' % target) from None
    except OSError:
        # A file system without hard links: check, then rename.
        if os.path.exists(target):
            raise BackupRefused('%s exists; it is replaced only with --force' % target) from None
        os.replace(partial, target)


def _fsync(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
