"""Command line: ``python -m balance_api {migrate,backup,serve,verify,create-key,list-keys,
revoke-key,expire-points,club-policy,prune-idempotency}`` and the exports' and proxy's
commands; exit statuses and the database each opens: ``balance_api.cli``."""
import argparse
import datetime
import logging
import re
import sys

from . import __version__, cli
from .config import Settings
from .discounts import routes as discount_routes
from .exports import checkpoints
from .exports import commands as export_cli
from .points.ledger import POLICIES
from .storage import commands as storage_cli
from .web import proxy
from .web import idempotency

log = logging.getLogger('balance_api')

# Problems listed by verify, money and points together; the rest are counted.
MAX_LISTED = 1000


def _open(settings):
    # Named on stderr; refused unless it exists and is at this version's schema.
    return cli.open_for_command(settings)


def cmd_serve(settings, args):
    from .app import create_app
    from .auth import keys
    from .web.server import GunicornServer, default_workers
    # Once, before any worker forks; the migration lock makes racing servers safe.
    db, _ = storage_cli.open_and_migrate(settings)
    if settings.auth:
        with db.connection_context():
            token = keys.create_bootstrap_key(db)
        if token is not None:
            _announce_bootstrap_key(token)
    db.close_all() if hasattr(db, 'close_all') else db.close()
    options = {'bind': '%s:%d' % (args.host, args.port),
               'workers': args.workers or default_workers()}
    GunicornServer(options, settings, create_app).run()
    return 0


def _announce_bootstrap_key(token):
    # On standard output only (not the log): shown once, stored nowhere.
    print('=' * 72)
    print('No API key existed: created the admin key "bootstrap". Its token is shown')
    print('this once; send it as "Authorization: Bearer <token>". Keep it secret,')
    print('make narrower keys with create-key, and revoke this one when done.')
    print('BOOTSTRAP TOKEN: %s' % token)
    print('=' * 72, flush=True)


def _date(text):
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError('a date is YYYY-MM-DD, not %r' % text) from None


def _key_name(text):
    from .auth.keys import check_name
    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _permit_list(text):
    from .auth.permits import parse
    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _uid(text):
    from .money.schemas import parse_user_id
    uid = parse_user_id(text)
    if uid is None:
        raise argparse.ArgumentTypeError('a uid is a positive integer that fits 64 bits')
    return uid


def _brand_id(text):
    from .discounts.schemas import parse_id
    brand_id = parse_id(text)
    if brand_id is None:
        raise argparse.ArgumentTypeError('a brand id is a positive integer that fits 64 bits')
    return brand_id


def cmd_create_key(settings, args):
    from .auth import keys
    db = _open(settings)
    with db.connection_context():
        try:
            token = keys.create_key(db, args.name, args.permits, uid=args.uid,
                                    expires_on=args.expires)
        except keys.KeyTaken as exc:
            cli.fail('create-key: %s' % exc)
            return 1
    print('created key %s: permits %s%s%s' % (
        args.name, ','.join(args.permits), '; bound to uid %d' % args.uid if args.uid else '',
        '; expires after %s' % args.expires if args.expires else ''))
    print('the token is shown this once; it is stored only as a hash:')
    print(token)
    return 0


def cmd_list_keys(settings, args):
    from .auth import keys
    found = keys.list_keys(_open(settings))

    def text(value):
        return '-' if value is None else str(value)[:19]

    rows = [('name', 'permits', 'uid', 'created', 'expires', 'last used', 'revoked')]
    rows += [(key.name, ','.join(key.permits), text(key.uid), text(key.created_at),
              text(key.expires_on), text(key.last_used_at), text(key.revoked_at))
             for key in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def cmd_revoke_key(settings, args):
    from .auth import keys
    db = _open(settings)
    with db.connection_context():
        try:
            keys.revoke_key(db, args.name)
        except keys.KeyNotFound as exc:
            cli.fail('revoke-key: %s' % exc)
            return 1
    print('revoked key %s (every worker refuses it within %g s)'
          % (args.name, keys.RECHECK_SECONDS))
    return 0


def cmd_verify(settings, args):
    from .money.verify import verify_ledger
    from .discounts.verify import verify_discounts
    from .points.verify import verify_points
    db = _open(settings)
    interactive = sys.stderr.isatty()

    def progress(kind, count):
        if interactive:
            sys.stderr.write('\rchecked %d %s' % (count, kind))
            sys.stderr.flush()

    with db.connection_context():
        report = verify_ledger(db, progress=progress)
        # One list of at most MAX_LISTED problems for both ledgers.
        points = verify_points(db, progress=progress,
                               max_problems=max(0, MAX_LISTED - len(report.problems)))
        discounts = verify_discounts(db, max_problems=max(
            0, MAX_LISTED - len(report.problems) - len(points.problems)))
        held_to = []
        if args.checkpoints:
            try:
                held_to = checkpoints.check_against(db, args.checkpoints, args.public_key)
            except OSError as exc:
                cli.fail('verify: cannot read %s: %s' % (args.checkpoints, exc.strerror))
                return 2
    if interactive:
        sys.stderr.write('\r\033[K')
    print('accounts: %d, postings: %d, journal entries: %d'
          % (report.accounts, report.postings, report.journal_entries))
    if not points.empty:
        print('points members: %d, points entries: %d, points draws: %d'
              % (points.members, points.entries, points.draws))
    if not discounts.empty:
        print('discount brands: %d, codes: %d, claimed: %d, audit rows: %d'
              % (discounts.brands, discounts.codes, discounts.claimed, discounts.audit_rows))
    for found in [*report.problems, *points.problems, *discounts.problems, *held_to]:
        made_with = getattr(found, 'key_name', None)
        print('PROBLEM %s: %s%s' % (found.kind, found.detail,
                                    ' [made with key %s]' % made_with if made_with else ''))
    unlisted = report.unlisted + points.unlisted + discounts.unlisted
    if unlisted:
        print('... and %d more problem(s), not listed' % unlisted)
    if args.checkpoints:
        print('checkpoints in %s: %s' % (args.checkpoints, 'held' if not held_to else
                                         '%d problem(s)' % len(held_to)))
    ok = report.ok and points.ok and discounts.ok and not held_to
    print('ledger OK' if ok else 'ledger BROKEN: %d problem(s)'
          % (len(report.problems) + len(points.problems) + len(discounts.problems)
             + len(held_to) + unlisted))
    return 0 if ok else 1


def cmd_discounts_stats(settings, args):
    from .discounts.commands import print_stats
    return print_stats(_open(settings), args.brand, err=cli.fail)


def cmd_expire_points(settings, args):
    from .points.ledger import PointsLedger
    db = _open(settings)
    interactive = sys.stderr.isatty()

    def progress(written):
        if interactive:
            sys.stderr.write('\rwrote %d expire entries' % written)
            sys.stderr.flush()

    with db.connection_context():
        written = PointsLedger(db).expire_due(progress=progress)
    if interactive:
        sys.stderr.write('\r\033[K')
    print('wrote %d expire entries' % written)
    return 0


def cmd_club_policy(settings, args):
    from .points.ledger import PointsLedger
    db = _open(settings)
    with db.connection_context():
        PointsLedger(db).set_policy(args.slug, args.policy)
    print('club %s: policy %s' % (args.slug, args.policy))
    return 0


def _club_slug(text):
    from .points.schemas import NAME_PATTERN
    if not re.fullmatch(NAME_PATTERN, text):
        raise argparse.ArgumentTypeError(
            'a club slug is 1 to 64 characters, no control characters, no space at either end')
    return text


def cmd_prune_idempotency(settings, args):
    db = _open(settings)
    with db.connection_context():
        removed = idempotency.prune(db, datetime.timedelta(hours=args.older_than_hours))
    print('removed %d idempotency keys' % removed)
    return 0


# Ten years: far beyond any retention, well before now minus it leaves the calendar.
MAX_RETENTION_HOURS = 24 * 3653


def _retention_hours(text):
    # Clients are promised that a retry within 24 hours is recognized.
    try:
        hours = float(text)
    except ValueError:
        hours = None
    if hours is None or not 24 <= hours <= MAX_RETENTION_HOURS:
        raise argparse.ArgumentTypeError('hours are a number from 24 to %d, not %r'
                                         % (MAX_RETENTION_HOURS, text))
    return hours


def _port(text):
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError('a port is 1 to 65535, not %r' % text)
    return int(text)


def _worker_count(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError('workers are a count (0: the default), not %r' % text)
    return int(text)


def main(argv=None):
    parser = cli.CommandLineParser(prog='python -m balance_api')
    parser.add_argument('--version', action='version', version='balance_api %s' % __version__)
    commands = parser.add_subparsers(dest='command', required=True)
    storage_commands = storage_cli.register(commands)
    serve = commands.add_parser('serve', help='migrate, then serve the API under gunicorn')
    serve.add_argument('--host', default='127.0.0.1')
    serve.add_argument('--port', type=_port, default=8000)
    serve.add_argument('--workers', type=_worker_count, default=0,
                       help='worker processes (default: 2 x cores + 1)')
    verify = commands.add_parser(
        'verify', help='recompute every balance and hash chain; exit 1 on any problem')
    verify.add_argument('--checkpoints', metavar='FILE',
                        help='also prove the ledger still extends every signed checkpoint in FILE')
    verify.add_argument('--public-key', metavar='KEY',
                        help="the checkpoints' public key (base64); default: the one each names")
    create_key = commands.add_parser(
        'create-key', help='create an API key and print its token once (the last line)')
    create_key.add_argument('--name', required=True, type=_key_name)
    create_key.add_argument('--permits', required=True, type=_permit_list,
                            help='comma-separated permits, e.g. Balance:Api:Balance:Get, or admin')
    create_key.add_argument('--uid', type=_uid, help='bind the key to this user')
    create_key.add_argument('--expires', type=_date, metavar='YYYY-MM-DD',
                            help='last day (UTC) the key works')
    commands.add_parser('list-keys', help='show every key (never a token)')
    revoke = commands.add_parser('revoke-key', help='revoke an API key')
    revoke.add_argument('name')
    commands.add_parser('expire-points',
                        help='write the expire entries of grants past their expiry date')
    policy = commands.add_parser('club-policy', help="set the order a club's spends draw in")
    policy.add_argument('slug', type=_club_slug)
    policy.add_argument('policy', choices=POLICIES)
    checkpoint_commands = checkpoints.add_checkpoint_command(commands)
    export_commands = export_cli.register(commands)
    # The routes whose paths carry a key: the proxy never logs their paths.
    proxy_commands = proxy.add_proxy_command(commands, secret_routes=discount_routes.SECRET_ROUTES)
    stats = commands.add_parser('discounts-stats',
                                help='codes generated, claimed and remaining, per brand')
    stats.add_argument('--brand', type=_brand_id, help='only this brand')
    prune = commands.add_parser('prune-idempotency', help='forget old idempotency keys')
    prune.add_argument('--older-than-hours', type=_retention_hours, default=48.0,
                       help='at least 24 (default 48)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        cli.fail(exc)
        return cli.USAGE
    handlers = {**storage_commands, 'serve': cmd_serve, 'verify': cmd_verify,
                'prune-idempotency': cmd_prune_idempotency, 'create-key': cmd_create_key,
                'list-keys': cmd_list_keys, 'revoke-key': cmd_revoke_key,
                'expire-points': cmd_expire_points, 'club-policy': cmd_club_policy,
                'discounts-stats': cmd_discounts_stats,
                **checkpoint_commands, **export_commands, **proxy_commands}
    # One line and a documented exit status for what stops a command (balance_api.cli).
    return cli.run(handlers[args.command], settings, args)


if __name__ == '__main__':
    sys.exit(main())
