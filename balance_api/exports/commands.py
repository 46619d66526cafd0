"""The exports' commands: export, signing-key, verify-export, reconcile.

``register(commands)`` adds them to the command line's subparsers and
returns their handlers, ``handler(settings, args) -> exit code``: 0 when
all is well, 1 for a problem found or met, 2 for a usage error, 3 for the
database (``balance_api.cli``).
"""
import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import sys

from .. import cli
from ..errors import ApiError
from . import query as export_query
from . import run, signing
from .discounts import DISCOUNTS
from .journal import JOURNAL
from .points import POINTS
from .reconcile import reconcile

PROG = 'python -m balance_api'


def _fail(command, message, code=1):
    cli.fail('%s: %s' % (command, message))
    return code


def _open(settings):
    # Named on stderr; refused unless it exists and is at this version's schema.
    return cli.open_for_command(settings)


def _close(db):
    db.close_all() if hasattr(db, 'close_all') else db.close()


def register(commands):
    export = commands.add_parser('export', help='write the journal (or the points entries) '
                                                'of a range of UTC days as CSV or JSON Lines')
    export.add_argument('--date-start', required=True, metavar='YYYY-MM-DD')
    export.add_argument('--date-end', required=True, metavar='YYYY-MM-DD')
    export.add_argument('--uid', help='only the rows of this user (points: member)')
    export.add_argument('--points', action='store_true', help='the points entries, not the journal')
    export.add_argument('--discounts', action='store_true',
                        help="the discount codes' audit rows, not the journal (no --operation)")
    export.add_argument('--operation', action='append', default=[],
                        help='only this operation (points: event type); may repeat')
    export.add_argument('--format', choices=export_query.FORMATS, default='csv')
    export.add_argument('--output', help='the file to write (default: standard output)')
    export.add_argument('--manifest', help='also write the signed manifest (JSON) to this file')
    key = commands.add_parser('signing-key', help='create the Ed25519 key that signs manifests')
    key.add_argument('--out', help='the PEM file to create (default: SIGNING_KEY_FILE)')
    check = commands.add_parser('verify-export', help='check an export file against its '
                                                      'manifest, offline')
    check.add_argument('file')
    check.add_argument('--manifest', help='the manifest (a CSV export needs one; a JSON Lines '
                                          'export carries its own as its last line)')
    check.add_argument('--public-key', help='the public key (base64, or a file holding it); '
                                            'default: the one the manifest names')
    check.add_argument('--against-ledger', action='store_true',
                       help="also compare the manifest's closing balances and last hashes "
                            'with the database (DATABASE_URL)')
    rec = commands.add_parser('reconcile', help='opening + postings = closing for every '
                                                'account, and deposits - withdrawals = the '
                                                "change in the users' total")
    rec.add_argument('--date-start', required=True, metavar='YYYY-MM-DD')
    rec.add_argument('--date-end', required=True, metavar='YYYY-MM-DD')
    return {'export': cmd_export, 'signing-key': cmd_signing_key,
            'verify-export': cmd_verify_export, 'reconcile': cmd_reconcile}


def cmd_export(settings, args):
    if args.points and args.discounts:
        return _fail('export', '--points and --discounts are two exports: choose one', 2)
    source = DISCOUNTS if args.discounts else POINTS if args.points else JOURNAL
    if args.operation and getattr(source, 'filter_key', source.kind_key) is None:
        return _fail('export', 'the %s export takes no --operation' % source.name, 2)
    try:
        found = export_query.build(args.date_start, args.date_end, args.uid, (), args.format)
        for kind in args.operation:
            if kind not in source.kinds:
                raise export_query._kind_error(source.kind_key)()
        found = found._replace(kinds=tuple(dict.fromkeys(args.operation)))
    except ApiError as exc:
        return _fail('export', exc.message, 2)
    key = None
    if args.format == 'jsonl' or args.manifest:
        try:
            key = signing.load_private_key(settings.signing_key_file)
        except signing.SigningKeyMissing as exc:
            return _fail('export', '%s (a manifest must be signed)' % exc, cli.USAGE)
    paths = [path for path in (args.output, args.manifest) if path]
    if len({os.path.realpath(path) for path in paths}) < len(paths):
        return _fail('export', '--output and --manifest name the same file', cli.USAGE)
    for path in paths:
        if os.path.isdir(path):
            return _fail('export', 'cannot write %s: it is a directory' % path)
    db = _open(settings)
    export = run.Export(db, source, found, key)
    interactive = sys.stderr.isatty()
    if interactive:
        export.on_chunk = lambda rows: (sys.stderr.write('\rexported %d rows' % rows),
                                        sys.stderr.flush())
    # Both files are written beside their names and renamed once both are whole
    # and durable: a failed export leaves no file that looks like an export, and
    # a path that cannot be written is refused before the export starts.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_close, db)
        if interactive:
            cleanup.callback(lambda: sys.stderr.write('\r\033[K'))
        files = {}
        for name, path in (('output', args.output), ('manifest', args.manifest)):
            if not path:
                continue
            try:
                files[name] = _PartialFile(path)
            except OSError as exc:
                return _fail('export', 'cannot write %s: %s' % (path, exc.strerror))
            cleanup.callback(files[name].discard)
        output = files['output'].handle if 'output' in files else sys.stdout.buffer
        try:
            with db.connection_context():
                for chunk in export.chunks():
                    output.write(chunk)
            output.flush()
            if 'manifest' in files:
                files['manifest'].handle.write(
                    json.dumps(export.manifest, ensure_ascii=False, indent=2).encode('utf-8')
                    + b'\n')
            for partial in files.values():
                partial.finish()
            for partial in files.values():
                partial.rename()
        except OSError as exc:
            return _fail('export', 'cannot write %s: %s' % (exc.filename or 'the export',
                                                           exc.strerror))
    return 0


class _PartialFile:
    """``path`` written as ``path.partial``: made durable by ``finish``, renamed
    onto ``path`` by ``rename``, removed by ``discard`` unless renamed."""

    def __init__(self, path):
        self.path = path
        self.partial = path + '.partial'
        self.handle = open(self.partial, 'wb')
        self.renamed = False

    def finish(self):
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def rename(self):
        os.replace(self.partial, self.path)
        self.renamed = True

    def discard(self):
        if self.renamed:
            return
        # Closing flushes what is buffered, which fails again after a full disk.
        with contextlib.suppress(OSError):
            self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial)


def cmd_signing_key(settings, args):
    path = args.out or settings.signing_key_file
    if not path:
        return _fail('signing-key', 'name the key file: --out PATH or SIGNING_KEY_FILE', 2)
    try:
        public = signing.create_key_file(path)
    except FileExistsError:
        return _fail('signing-key', '%s exists; it is never overwritten' % path)
    except OSError as exc:
        return _fail('signing-key', 'cannot create %s: %s' % (path, exc.strerror))
    print('created the signing key %s (keep it outside the database and its backups)' % path)
    print('public key (Ed25519, base64):')
    print(public)
    return 0


def _split_export(data, manifest_file):
    """``(row bytes, manifest)`` of an export file."""
    body, manifest = data, None
    cut = data.rfind(b'\n', 0, len(data) - 1) + 1
    last = data[cut:]
    if last.startswith(b'{"manifest"'):
        body, manifest = data[:cut], json.loads(last.decode('utf-8'))['manifest']
    if manifest_file:
        with open(manifest_file, encoding='utf-8') as handle:
            manifest = json.load(handle)
    return body, manifest


def _records(body, format, columns):
    text = body.decode('utf-8')
    if format == 'jsonl':
        for line in text.splitlines():
            yield json.loads(line)
        return
    reader = csv.reader(io.StringIO(text, newline=''))
    header = next(reader, None)
    if header != list(columns):
        raise ValueError('the header is not the export columns')
    for cells in reader:
        yield dict(zip(columns, cells))


def _public_key(given):
    if given and os.path.exists(given):
        with open(given, encoding='ascii') as handle:
            return handle.read().strip()
    return given


def cmd_verify_export(settings, args):
    try:
        with open(args.file, 'rb') as handle:
            data = handle.read()
        body, manifest = _split_export(data, args.manifest)
    except (OSError, ValueError, KeyError) as exc:
        return _fail('verify-export', 'cannot read the export or its manifest: %s' % exc)
    sources = {found.name: found for found in (JOURNAL, POINTS, DISCOUNTS)}
    if not isinstance(manifest, dict) or manifest.get('export') not in sources:
        return _fail('verify-export', 'no manifest: a CSV export needs --manifest FILE')
    source = sources[manifest['export']]
    parameters = manifest.get('parameters', {})
    try:
        found = export_query.build(parameters['date-start'], parameters['date-end'],
                                   parameters.get('uid'), tuple(parameters[source.kind_key]),
                                   parameters['format'])
        tally = source.tally(found)
        for record in _records(body, found.format, source.columns):
            tally.add(int(record['id']), record[source.kind_column],
                      source.amount_type(record[source.amount_column]))
    except (ApiError, KeyError, ValueError, TypeError) as exc:
        return _fail('verify-export', 'the file is not the export its manifest describes: %s'
                     % exc)
    problems = []
    recomputed = {**tally.figures(), 'sha256': hashlib.sha256(body).hexdigest()}
    for name, value in recomputed.items():
        if manifest.get(name) != value:
            problems.append('%s: the file gives %s, the manifest says %s'
                            % (name, json.dumps(value), json.dumps(manifest.get(name))))
    print('rows: %d, ids %s to %s, sha256 %s' % (tally.rows, tally.first_id, tally.last_id,
                                                 recomputed['sha256']))
    public = _public_key(args.public_key)
    origin = 'the public key given'
    if not public:
        public = (manifest.get('signature') or {}).get('public_key')
        origin = ('the public key in the manifest (this shows the manifest is intact, not '
                  'who signed it: compare the key with GET /export/public-key)')
    if public and signing.verify(manifest, public):
        print('signature: valid, checked with %s' % origin)
    else:
        problems.append('signature: not valid for %s' % origin)
    if args.against_ledger:
        problems += _against_ledger(settings, source, found, manifest)
    for problem in problems:
        print('PROBLEM %s' % problem)
    print('export OK' if not problems else 'export BROKEN: %d problem(s)' % len(problems))
    return 0 if not problems else 1


def _against_ledger(settings, source, found, manifest):
    """The manifest's closing balances and last hashes against the database,
    as of the end of its range, computed as the manifest computes them."""
    db = _open(settings)
    try:
        with db.connection_context():
            settled = source.settled_id(db)
            with run.snapshot(db, source.probe):
                live = source.figures(db, found, settled)
    finally:
        _close(db)
    problems = []
    for name, rows in live.items():
        if manifest.get(name) != rows:
            stated = {json.dumps(row, sort_keys=True) for row in manifest.get(name) or []}
            now = {json.dumps(row, sort_keys=True) for row in rows}
            for row in sorted(stated - now):
                problems.append('ledger: the manifest states %s %s; the database does not'
                                % (name, row))
            for row in sorted(now - stated):
                problems.append('ledger: the database has %s %s; the manifest does not'
                                % (name, row))
    if not problems:
        print('ledger: closing balances and last hashes match the database')
    return problems


def cmd_reconcile(settings, args):
    try:
        found = export_query.build(args.date_start, args.date_end)
    except ApiError as exc:
        return _fail('reconcile', exc.message, 2)
    db = _open(settings)
    try:
        with db.connection_context():
            result = reconcile(db, found)
    finally:
        _close(db)
    print('accounts: %d' % result.accounts)
    for found_break in result.breaks:
        print('BREAK %s' % json.dumps(found_break))
    if result.unlisted:
        print('... and %d more break(s), not listed' % result.unlisted)
    print('reconciliation OK' if result.ok else 'reconciliation BROKEN: %d break(s)'
          % (len(result.breaks) + result.unlisted))
    return 0 if result.ok else 1


def main(argv=None):
    """Run these commands alone (``python -m balance_api.exports.commands``)."""
    from ..config import Settings
    parser = argparse.ArgumentParser(prog=PROG)
    handlers = register(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    return cli.run(handlers[args.command], Settings.from_env(), args)


if __name__ == '__main__':
    sys.exit(main())
