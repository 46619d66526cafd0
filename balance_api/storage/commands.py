"""The schema's and the database file's commands: ``migrate`` and ``backup``.

``register(commands)`` adds them to the command line's subparsers and
returns their handlers, ``handler(settings, args) -> exit status`` (see
``balance_api.cli``).

``migrate`` applies what is pending; ``migrate --status`` lists applied and
pending migrations; ``migrate --down-to NAME --yes`` runs the ``down()`` of
every applied migration after NAME, newest first, each in its own
transaction, under the lock ``migrate`` takes. It destroys what those
migrations hold (a table's rows, a column's values), so it needs ``--yes``;
without it, it only lists what it would revert.
"""
from urllib.parse import urlparse

from playhouse.migrations import MigrationError

from .. import cli
from .backup import BackupRefused, backup_sqlite
from .db import (NO_MIGRATION, applied_after, migrate, resolve_migration, roll_back,
                 schema_status)


def register(commands):
    parser = commands.add_parser(
        'migrate', help='apply pending schema migrations (--status: list them; '
                        '--down-to NAME --yes: revert the ones after NAME)')
    what = parser.add_mutually_exclusive_group()
    what.add_argument('--status', action='store_true',
                      help='list applied and pending migrations; change nothing')
    what.add_argument('--down-to', metavar='NAME',
                      help='run down() of every applied migration after NAME (its name or '
                           'number), newest first; %s reverts them all. Destroys their data'
                           % NO_MIGRATION)
    parser.add_argument('--yes', action='store_true',
                        help='confirm --down-to (without it, only list what it would revert)')
    backup = commands.add_parser(
        'backup', help='copy the SQLite database to DEST, consistently, while the service runs')
    backup.add_argument('destination', metavar='DEST', help='the file to create')
    backup.add_argument('--force', action='store_true', help='replace DEST if it exists')
    return {'migrate': cmd_migrate, 'backup': cmd_backup}


def open_and_migrate(settings):
    """Open (creating a SQLite file if need be) and migrate the database;
    returns ``(db, names applied)``. A database a newer version migrated is
    refused: this version's code does not know its schema."""
    db = cli.open_for_command(settings, may_create=True, check_schema=False)
    applied = migrate(db)
    with db.connection_context():
        cli.require_current(schema_status(db))
    return db, applied


def cmd_migrate(settings, args):
    if args.yes and not args.down_to:
        raise cli.CommandError('--yes confirms --down-to NAME; alone it means nothing', cli.USAGE)
    if args.status:
        return _status(settings)
    if args.down_to:
        return _down_to(settings, args.down_to, args.yes)
    _, applied = open_and_migrate(settings)
    print('applied: %s' % (', '.join(applied) or 'nothing, the schema is up to date'))
    return 0


def _status(settings):
    db = cli.open_for_command(settings, check_schema=False)
    with db.connection_context():
        status = schema_status(db)
    for name, applied_at in status.applied:
        print('applied  %s  %s%s' % (name, str(applied_at)[:19],
                                     '  (not shipped by this version)'
                                     if name in status.unknown else ''))
    for name in status.pending:
        print('pending  %s' % name)
    if status.unknown:
        summary = '%d migration(s) this version does not ship' % len(status.unknown)
    elif status.pending:
        summary = '%d pending: run python -m balance_api migrate' % len(status.pending)
    else:
        summary = 'up to date'
    print('schema: %s' % summary)
    return 0


def _down_to(settings, name, confirmed):
    try:
        target = resolve_migration(name)
    except MigrationError as exc:
        raise cli.CommandError('migrate --down-to: %s' % exc, cli.USAGE) from None
    db = cli.open_for_command(settings, check_schema=False)
    with db.connection_context():
        after = applied_after(db, target)
    if not after:
        print('nothing to revert: no migration after %s is applied' % target)
        return 0
    if not confirmed:
        for found in reversed(after):
            print('would revert  %s' % found)
        raise cli.CommandError(
            'migrate --down-to %s destroys what those %d migration(s) hold; stop the service, '
            'take a backup, then run it again with --yes' % (target, len(after)), cli.USAGE)
    try:
        reverted = roll_back(db, target)
    except MigrationError as exc:
        raise cli.CommandError('migrate --down-to: %s' % exc, cli.DATABASE) from None
    print('reverted: %s' % (', '.join(reverted) or 'nothing'))
    return 0


def cmd_backup(settings, args):
    if urlparse(settings.database_url).scheme.startswith('postgres'):
        raise cli.CommandError(
            'backup copies a SQLite database; back up PostgreSQL with its own tools: '
            'pg_dump --format=custom (a logical copy), or pg_basebackup with WAL archiving '
            '(a physical one)', cli.USAGE)
    db = cli.open_for_command(settings, check_schema=False)
    try:
        result = backup_sqlite(db, args.destination, replace=args.force)
    except BackupRefused as exc:
        raise cli.CommandError('backup: %s' % exc, cli.REFUSED) from None
    except OSError as exc:
        raise cli.CommandError('backup: cannot write %s: %s'
                               % (args.destination, exc.strerror or exc), cli.REFUSED) from None
    print('backed up %s to %s: %d pages, %d bytes'
          % (db.database, result.path, result.pages, result.bytes))
    return 0
