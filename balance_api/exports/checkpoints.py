"""Signed checkpoints: what the ledgers held at a moment, kept outside the database.

``python -m balance_api checkpoint [--file PATH]`` (from cron; safe while
traffic flows) reads, in one snapshot of the database (PostgreSQL: a
REPEATABLE READ READ ONLY transaction; SQLite: one read transaction), every
account's balance, last hash and newest posting, every points member's last
hash and newest entry, and the totals; signs that record (``signing.sign``,
with the key of ``SIGNING_KEY_FILE``) and appends it as one JSON line to the
checkpoint file, then stores it in the ``checkpoint`` table (migration 0008)
for operators to see. The file is ``--file``, else ``CHECKPOINT_FILE`` from
the environment, else ``checkpoints.jsonl`` in the working directory; keep
it outside the database and its backups (another machine, append-only
storage).

The file is a chain of its own: every record carries the SHA-256 of the
line before it. It is created with mode 0600; a line is written with one
append and made durable (fsync) before the command reports success, and
runs are serialized by a lock on the file. A line left incomplete by a
crash was never reported as written: the next run cuts it off.

``check_against(db, path, public_key=None)`` (``verify --checkpoints FILE``)
holds the ledger to every record of the file: its signature, the file's
chain, and that the ledger still extends it. The plain verifier recomputes
the chains from their start, which someone with write access can redo after
rewriting the past; a checkpoint pins the hash each account's chain had, so
a rewritten posting older than the checkpoint changes the hash of the
posting the checkpoint names, and the check sees it.

Record format (every line; keys are sorted in the signed bytes)::

    {"format": "balance_api checkpoint 2",
     "sequence": 7,                       # 1 for the file's first line
     "taken_at": "2026-01-31T23:00:00.123456Z",
     "previous_line_sha256": "<64 hex>" or null (first line),
     "totals": {"accounts": 2, "balance_sum": "144.01", "journal_max_id": 9,
                "points_members": 1, "points_sum": 5300, "points_entry_max_id": 6,
                "discount_brands": 1, "discount_audit_settled_id": 41},
     "accounts": [{"id": 1, "balance": "89.00", "last_hash": "<64 hex>",
                   "last_posting_id": 12}, ...],
     "points_members": [{"member_id": 21, "last_hash": "<64 hex>",
                         "last_entry_id": 6, "points": 5300}, ...],
     "discount_brands": [{"brand_id": 1, "last_audit_id": 40, "audit_rows": 7,
                          "generated": 100, "claimed": 6, "audit_sha256": "<64 hex>"}, ...],
     "signature": {"algorithm": "Ed25519", "public_key": "<base64>", "value": "<base64>"}}

``accounts`` are the users' accounts (deleted ones included), not the
external counterparty 0, whose legs are not chained and whose balance is
implied; every deposit and withdrawal has a user leg, which is checkpointed.
``discount_brands`` pin every brand's audit rows up to the settled audit id
(``checkpoint_discounts``). Format 1, written before the discount codes were
checkpointed, has neither ``discount_brands`` nor their two totals; its
records are checked for the rest.
"""
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import NamedTuple, Optional

import peewee
from peewee import JOIN, fn

from .. import cli
from ..clock import utc_now
from ..findings import stream
from ..money.amounts import ZERO, MoneyField, format_amount
from ..money.chain import GENESIS_HASH, posting_hash
from ..money.models import EXTERNAL_ACCOUNT_ID, Account, JournalEntry, Posting
from ..points.chain import GENESIS_HASH as POINTS_GENESIS_HASH
from ..points.chain import entry_hash
from ..points.models import PointsBalance, PointsClub, PointsDraw, PointsEntry, PointsMember
from ..storage.db import database, is_postgres, read_snapshot, write_transaction
from ..storage.models import BaseModel
from . import checkpoint_discounts, signing

FORMAT = 'balance_api checkpoint 2'
# Records without the discount codes, from before they were checkpointed.
FORMAT_WITHOUT_DISCOUNTS = 'balance_api checkpoint 1'
FILE_ENV = 'CHECKPOINT_FILE'
DEFAULT_FILE = 'checkpoints.jsonl'
# Bytes read at a time when looking for the last line of the file.
_TAIL_CHUNK = 64 * 1024


class Checkpoint(BaseModel):
    """A checkpoint appended to the file (the schema: migration 0008)."""

    id = peewee.BigAutoField()
    sequence = peewee.BigIntegerField()
    taken_at = peewee.DateTimeField()
    line_sha256 = peewee.CharField(max_length=64, unique=True)
    previous_line_sha256 = peewee.CharField(max_length=64, null=True)
    accounts = peewee.BigIntegerField()
    balance_sum = MoneyField()
    journal_max_id = peewee.BigIntegerField(null=True)
    points_members = peewee.BigIntegerField()
    points_sum = peewee.BigIntegerField()
    points_entry_max_id = peewee.BigIntegerField(null=True)
    public_key = peewee.CharField(max_length=64)
    record = peewee.TextField()


_MODELS = [Account, JournalEntry, Posting, PointsBalance, PointsClub, PointsDraw, PointsEntry,
           PointsMember, Checkpoint] + checkpoint_discounts.MODELS


class CheckpointProblem(NamedTuple):
    """One finding of ``check_against``; ``account_id`` names the account or
    points member it is about (None: the file or a whole checkpoint)."""
    kind: str
    detail: str
    account_id: Optional[int] = None


class CheckpointFileError(RuntimeError):
    """The checkpoint file cannot be read or written."""


def _bound(db):
    """The models bound to ``db`` (they are already when it is the service's database)."""
    if database.obj is db:
        return contextlib.nullcontext()
    return db.bind_ctx(_MODELS)


def _timestamp(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def line_hash(line):
    """The SHA-256 (hex) of a line of the file, without its newline."""
    return hashlib.sha256(line).hexdigest()


# -- taking a checkpoint ------------------------------------------------------

def read_state(db):
    """Everything a checkpoint records but its place in the file, read in one
    snapshot: ``taken_at`` (naive UTC), totals, accounts, points members and
    discount brands."""
    # Before the snapshot, and outside any transaction: it may wait for writers.
    discount_settled = checkpoint_discounts.settled_id(db)
    with _bound(db), read_snapshot(db):
        # SQLite's snapshot starts with its first read, which comes next.
        taken_at = (db.execute_sql("SELECT now() AT TIME ZONE 'UTC'").fetchone()[0]
                    if is_postgres(db) else utc_now())
        latest = (Posting.select(Posting.account.alias('account_id'),
                                 fn.MAX(Posting.id).alias('last_id'))
                  .group_by(Posting.account).alias('latest'))
        accounts = []
        balance_sum = ZERO
        for account_id, balance, last_hash, last_id in stream(db, (
                Account.select(Account.id, Account.balance, Account.last_hash, latest.c.last_id)
                .join(latest, JOIN.LEFT_OUTER, on=(latest.c.account_id == Account.id))
                .where(Account.id != EXTERNAL_ACCOUNT_ID).order_by(Account.id).tuples())):
            balance_sum += balance
            accounts.append({'id': account_id, 'balance': format_amount(balance),
                             'last_hash': last_hash, 'last_posting_id': last_id})
        journal_max_id = JournalEntry.select(fn.MAX(JournalEntry.id)).scalar()

        newest = (PointsEntry.select(PointsEntry.member_id.alias('member_id'),
                                     fn.MAX(PointsEntry.id).alias('last_id'))
                  .group_by(PointsEntry.member_id).alias('newest'))
        held = (PointsBalance.select(PointsBalance.member_id.alias('member_id'),
                                     fn.SUM(PointsBalance.balance).alias('points'))
                .group_by(PointsBalance.member_id).alias('held'))
        members = []
        for member_id, last_hash, last_id, points in stream(db, (
                PointsMember.select(PointsMember.member_id, PointsMember.last_hash,
                                    newest.c.last_id, held.c.points)
                .join_from(PointsMember, newest, JOIN.LEFT_OUTER,
                           on=(newest.c.member_id == PointsMember.member_id))
                .join_from(PointsMember, held, JOIN.LEFT_OUTER,
                           on=(held.c.member_id == PointsMember.member_id))
                .order_by(PointsMember.member_id).tuples())):
            members.append({'member_id': member_id, 'last_hash': last_hash,
                            'last_entry_id': last_id, 'points': int(points or 0)})
        points_sum = int(PointsBalance.select(fn.SUM(PointsBalance.balance)).scalar() or 0)
        points_entry_max_id = PointsEntry.select(fn.MAX(PointsEntry.id)).scalar()
        brands, discount_settled = checkpoint_discounts.read_brands(db, discount_settled)
    totals = {'accounts': len(accounts), 'balance_sum': format_amount(balance_sum),
              'journal_max_id': journal_max_id, 'points_members': len(members),
              'points_sum': points_sum, 'points_entry_max_id': points_entry_max_id,
              'discount_brands': len(brands), 'discount_audit_settled_id': discount_settled}
    return {'taken_at': _timestamp(taken_at), 'totals': totals, 'accounts': accounts,
            'points_members': members, 'discount_brands': brands}


def _last_line(descriptor):
    """``(last complete line, offset where an incomplete tail starts or None)``;
    the line is None in an empty file."""
    size = os.fstat(descriptor).st_size
    if size == 0:
        return None, None
    end = size
    torn = None
    last_byte = os.pread(descriptor, 1, size - 1)
    if last_byte != b'\n':
        # A tail without its newline: find where it starts.
        start = _line_start(descriptor, size)
        torn = start
        end = start
        if end == 0:
            return None, torn
    # ``end`` is just past a newline: the last complete line ends there.
    start = _line_start(descriptor, end - 1)
    return os.pread(descriptor, end - 1 - start, start), torn


def _line_start(descriptor, end):
    """The offset just after the last newline before ``end`` (0 if none)."""
    position = end
    while position > 0:
        read_from = max(0, position - _TAIL_CHUNK)
        chunk = os.pread(descriptor, position - read_from, read_from)
        found = chunk.rfind(b'\n')
        if found >= 0:
            return read_from + found + 1
        position = read_from
    return 0


def _count_lines(descriptor, end):
    count = position = 0
    while position < end:
        chunk = os.pread(descriptor, min(_TAIL_CHUNK, end - position), position)
        if not chunk:
            break
        count += chunk.count(b'\n')
        position += len(chunk)
    return count


def _write_all(descriptor, data):
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def take_checkpoint(db, private_key, path, warn=None):
    """Take a checkpoint, append it to ``path`` and store it in the database;
    returns the signed record. ``warn(text)`` hears of an incomplete last
    line cut off the file. Raises ``CheckpointFileError`` when the file
    fails; a failure to store the row is raised after the line is durable."""
    try:
        existed = os.path.exists(path)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise CheckpointFileError('cannot open %s: %s' % (path, exc.strerror)) from None
    try:
        if not existed:
            _sync_directory(path)
        # One checkpoint at a time per file: the previous line is read and
        # the new one appended under the same lock.
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        previous, torn = _last_line(descriptor)
        if torn is not None:
            os.ftruncate(descriptor, torn)
            os.fsync(descriptor)
            if warn is not None:
                warn('cut off an incomplete last line of %s (a checkpoint interrupted '
                     'while written)' % path)
        sequence = 1
        if previous is not None:
            try:
                sequence = int(json.loads(previous)['sequence']) + 1
            except (ValueError, KeyError, TypeError):
                sequence = _count_lines(descriptor, os.fstat(descriptor).st_size) + 1
        state = read_state(db)
        document = {'format': FORMAT, 'sequence': sequence, 'taken_at': state['taken_at'],
                    'previous_line_sha256': None if previous is None else line_hash(previous),
                    'totals': state['totals'], 'accounts': state['accounts'],
                    'points_members': state['points_members'],
                    'discount_brands': state['discount_brands']}
        record = signing.sign(private_key, document)
        line = signing.canonical(record)
        _write_all(descriptor, line + b'\n')
        os.fsync(descriptor)
    except OSError as exc:
        raise CheckpointFileError('cannot write %s: %s' % (path, exc.strerror)) from None
    finally:
        os.close(descriptor)  # and with it the lock
    _store(db, record, line)
    return record


def _sync_directory(path):
    """Make a new file's directory entry durable."""
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _parse_time(text):
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ')


def _store(db, record, line):
    totals = record['totals']
    with _bound(db), write_transaction(db):
        Checkpoint.insert(
            sequence=record['sequence'], taken_at=_parse_time(record['taken_at']),
            line_sha256=line_hash(line), previous_line_sha256=record['previous_line_sha256'],
            accounts=totals['accounts'], balance_sum=Decimal(totals['balance_sum']),
            journal_max_id=totals['journal_max_id'], points_members=totals['points_members'],
            points_sum=totals['points_sum'], points_entry_max_id=totals['points_entry_max_id'],
            public_key=record['signature']['public_key'],
            record=line.decode('utf-8')).execute()


# -- the command --------------------------------------------------------------

def add_checkpoint_command(commands):
    """Add ``checkpoint [--file PATH]`` to argparse's subparsers; returns its handler by name."""
    parser = commands.add_parser(
        'checkpoint', help='sign what the ledgers hold now and append it to the checkpoint file')
    parser.add_argument('--file', metavar='PATH', default=None,
                        help='the checkpoint file (default: $%s, else %s)'
                        % (FILE_ENV, DEFAULT_FILE))
    return {'checkpoint': cmd_checkpoint}


def checkpoint_path(args, environ=None):
    env = os.environ if environ is None else environ
    return getattr(args, 'file', None) or env.get(FILE_ENV) or DEFAULT_FILE


def cmd_checkpoint(settings, args):
    try:
        key = signing.load_private_key(settings.signing_key_file)
    except signing.SigningKeyMissing as exc:
        cli.fail('checkpoint: %s' % exc)
        return cli.USAGE
    path = checkpoint_path(args)
    db = cli.open_for_command(settings)

    def warn(text):
        print('balance_api: checkpoint: %s' % text, file=sys.stderr)

    try:
        with db.connection_context():
            record = take_checkpoint(db, key, path, warn=warn)
    except CheckpointFileError as exc:
        cli.fail('checkpoint: %s' % exc)
        return cli.REFUSED
    except peewee.DatabaseError as exc:
        # The line may be in the file already (it is written first).
        cli.fail('checkpoint: the database failed: %s' % ' '.join(str(exc).split()))
        return cli.DATABASE
    totals = record['totals']
    print('checkpoint %d at %s: %d accounts holding %s, journal up to %s; %d points members '
          'holding %d; %d discount brands, audit rows up to id %d; appended to %s' % (
              record['sequence'], record['taken_at'], totals['accounts'],
              totals['balance_sum'], totals['journal_max_id'] or 0, totals['points_members'],
              totals['points_sum'], totals['discount_brands'],
              totals['discount_audit_settled_id'], path))
    return 0


# -- checking the ledger against the file --------------------------------------

def _label(record, number):
    sequence = record.get('sequence') if isinstance(record, dict) else None
    taken_at = record.get('taken_at') if isinstance(record, dict) else None
    if isinstance(sequence, int) and isinstance(taken_at, str):
        return 'checkpoint %d of %s' % (sequence, taken_at)
    return 'checkpoint on line %d' % number


def _id(value, nullable=False):
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError('not an id: %r' % (value,))
    return value


def _hash_text(value):
    if not isinstance(value, str) or len(value) != 64:
        raise ValueError('not a hash: %r' % (value,))
    return value


def _amount(value):
    try:
        return Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        return None


def _expectations(record):
    """``(accounts, members, brands, totals)`` of a record: what the ledger must
    still extend. Raises ValueError or KeyError or TypeError on a malformed record."""
    if record.get('format') not in (FORMAT, FORMAT_WITHOUT_DISCOUNTS):
        raise ValueError('format %r' % (record.get('format'),))
    accounts = []
    for account in record['accounts']:
        balance = _amount(account['balance'])
        if balance is None:
            raise ValueError('balance %r' % (account['balance'],))
        accounts.append((_id(account['id']), _id(account['last_posting_id'], nullable=True),
                         _hash_text(account['last_hash']), balance))
    members = []
    for member in record['points_members']:
        members.append((_id(member['member_id']), _id(member['last_entry_id'], nullable=True),
                        _hash_text(member['last_hash'])))
    totals = record['totals']
    # Format 1 pinned no discount codes: held to nothing, they pass.
    brands, settled = {}, None
    if record['format'] == FORMAT:
        brands, settled = checkpoint_discounts.expectations(
            record['discount_brands'], totals['discount_audit_settled_id'])
    return accounts, members, brands, {
        'journal_max_id': _id(totals['journal_max_id'], nullable=True),
        'points_entry_max_id': _id(totals['points_entry_max_id'], nullable=True),
        'discount_audit_settled_id': settled}


def check_against(db, path, public_key=None):
    """The problems of the ledger held to every checkpoint in ``path``.

    Every record's signature is checked with ``public_key`` (base64, as
    ``signing.public_key_text`` gives it) or, without one, with the key the
    record names (then a record naming another key than the first is a
    problem too); the file's chain of line hashes; that every checkpointed
    account and points member still exists, that the posting (entry) the
    checkpoint names as its newest still has exactly the checkpointed hash,
    still belongs to it and still hashes to it, and that every posting
    (entry) after it still chains; that the discount audit rows up to the
    checkpoint's settled id are still the ones it signed, brand by brand;
    that the journal and the points entries reach at least as far; and that
    the file and the ``checkpoint`` table
    hold the same checkpoints. Returns a list of ``CheckpointProblem``.
    """
    problems = []

    def problem(kind, detail, account_id=None):
        problems.append(CheckpointProblem(kind, detail, account_id))

    records = _read_file(path, public_key, problem)
    with _bound(db), read_snapshot(db):
        _check_accounts(db, records, problem)
        _check_members(db, records, problem)
        checkpoint_discounts.check_brands(
            db, [(record.label, record.brands, record.totals['discount_audit_settled_id'])
                 for record in records
                 if record.totals['discount_audit_settled_id'] is not None], problem)
        _check_totals(records, problem)
        _check_table(records, problem)
    return problems


class _Record(NamedTuple):
    label: str
    line_sha256: str
    taken_at: Optional[datetime.datetime]
    accounts: list
    members: list
    brands: dict
    totals: dict


def _read_file(path, public_key, problem):
    """The well-formed records of the file, checking signatures and the file's chain."""
    try:
        handle = open(path, 'rb')
    except OSError as exc:
        problem('checkpoint file', 'cannot read %s: %s' % (path, exc.strerror))
        return []
    records = []
    first_key = None
    previous_hash = None
    with handle:
        number = 0
        for raw in handle:
            number += 1
            complete = raw.endswith(b'\n')
            line = raw[:-1] if complete else raw
            digest = line_hash(line)
            if not complete:
                problem('checkpoint file', 'line %d of %s is incomplete (a checkpoint '
                        'interrupted while written, or a damaged file)' % (number, path))
                break
            try:
                record = json.loads(line.decode('utf-8'))
                if not isinstance(record, dict):
                    raise ValueError('not an object')
            except ValueError:
                problem('checkpoint file', 'line %d of %s is not a JSON object' % (number, path))
                previous_hash = digest
                continue
            label = _label(record, number)
            chained = record.get('previous_line_sha256')
            if chained != previous_hash:
                if number == 1:
                    reason = 'names a line before it, and it is the first line'
                elif chained is None:
                    reason = 'names no line before it, and it is line %d' % number
                else:
                    reason = ('names the line before it by a hash that is not the hash of '
                              'line %d (a line was removed, added or changed)' % (number - 1))
                problem('checkpoint file chain', '%s (line %d of %s) %s'
                        % (label, number, path, reason))
            previous_hash = digest
            signature = record.get('signature')
            named_key = signature.get('public_key') if isinstance(signature, dict) else None
            if public_key is not None:
                if not signing.verify(record, public_key):
                    other = ('; it names the key %s' % named_key
                             if named_key != public_key else '')
                    problem('checkpoint signature', '%s: the signature is not valid for the '
                            'given public key %s%s' % (label, public_key, other))
            else:
                if not isinstance(named_key, str) or not signing.verify(record, named_key):
                    problem('checkpoint signature', '%s: the signature is not valid for the '
                            'key inside the record (%s)' % (label, named_key))
                if first_key is None:
                    first_key = (named_key, label)
                elif named_key != first_key[0]:
                    problem('checkpoint signature', '%s is signed with the key inside it, %s; '
                            '%s was signed with %s (give the public key to check both with)'
                            % (label, named_key, first_key[1], first_key[0]))
            try:
                accounts, members, brands, totals = _expectations(record)
                taken_at = _parse_time(record['taken_at'])
            except (ValueError, KeyError, TypeError) as exc:
                problem('checkpoint file', '%s (line %d of %s) is not a checkpoint record: %s'
                        % (label, number, path, exc))
                continue
            records.append(_Record(label, digest, taken_at, accounts, members, brands,
                                   totals))
    return records


def _grouped(rows):
    """Rows ordered by their first column, a group at a time: ``(key, [rows])``."""
    current, group = None, []
    for row in rows:
        if group and row[0] != current:
            yield current, group
            group = []
        current = row[0]
        group.append(row)
    if group:
        yield current, group


def _check_accounts(db, records, problem):
    # expected[account][posting id] = [(hash, balance, label), ...]
    expected = {}
    for record in records:
        for account_id, posting_id, last_hash, balance in record.accounts:
            expected.setdefault(account_id, {}).setdefault(posting_id, []).append(
                (last_hash, balance, record.label))
    if not expected:
        return
    current = dict(Account.select(Account.id, Account.last_hash).tuples())
    postings = stream(db, Posting.select(
        Posting.account, Posting.id, Posting.amount, Posting.balance_after, Posting.hash,
        Posting.journal, JournalEntry.created_at, JournalEntry.operation,
        JournalEntry.sender_id, JournalEntry.receiver_id, JournalEntry.amount,
        JournalEntry.transaction_description)
        .join(JournalEntry, JOIN.LEFT_OUTER, on=(Posting.journal == JournalEntry.id))
        .where(Posting.account != EXTERNAL_ACCOUNT_ID)
        .order_by(Posting.account, Posting.id).tuples())
    seen = set()
    for account_id, rows in _grouped(postings):
        wanted = expected.get(account_id)
        if wanted is None:
            continue
        seen.add(account_id)
        _check_account(account_id, rows, wanted, current.get(account_id), problem)
    for account_id, wanted in expected.items():
        labels = _labels(wanted)
        if account_id not in current:
            problem('checkpoint gone', 'account %d of %s no longer exists'
                    % (account_id, labels), account_id)
        elif account_id not in seen:
            _missing_postings(account_id, wanted, set(), problem)


def _labels(wanted):
    found = []
    for marks in wanted.values():
        for *_, label in marks:
            if label not in found:
                found.append(label)
    return ', '.join(found)


def _check_account(account_id, rows, wanted, last_hash, problem):
    chain = GENESIS_HASH
    # The first checkpointed posting: every posting after it must still chain.
    earliest = min((posting_id for posting_id in wanted if posting_id is not None), default=None)
    broken = False
    found = set()
    reported = [False]

    def noted(*args):
        reported[0] = True
        problem(*args)

    for (_, posting_id, amount, balance_after, stored_hash, journal_id, created_at, operation,
         sender_id, receiver_id, journal_amount, description) in rows:
        computed = None
        if isinstance(created_at, datetime.datetime):
            computed = posting_hash(
                chain, account_id=account_id, amount=amount, balance_after=balance_after,
                journal_id=journal_id, created_at=created_at, operation=operation,
                sender_id=sender_id, receiver_id=receiver_id, journal_amount=journal_amount,
                description=description)
        for checkpointed, balance, label in wanted.get(posting_id, ()):
            found.add(posting_id)
            if stored_hash != checkpointed:
                noted('checkpoint rewritten', 'account %d posting %d: its hash is not the '
                        'one %s recorded; the account\'s history up to it was rewritten'
                        % (account_id, posting_id, label), account_id)
            elif computed != stored_hash:
                noted('checkpoint rewritten', 'account %d posting %d: it still carries the '
                        'hash %s recorded, but its content or its predecessor no longer '
                        'hash to it' % (account_id, posting_id, label), account_id)
            elif balance_after != balance:
                noted('checkpoint balance', 'account %d posting %d: balance after is %s, '
                        '%s recorded %s' % (account_id, posting_id,
                                           _money_text(balance_after), label,
                                           format_amount(balance)), account_id)
        if (earliest is not None and posting_id > earliest and not broken
                and computed != stored_hash):
            broken = True
            problem('checkpoint chain', 'account %d posting %d (journal %d), after the posting '
                    '%d of %s: its hash does not match its content or its predecessor, so the '
                    'ledger no longer extends the checkpoint' % (
                        account_id, posting_id, journal_id, earliest, _labels(
                            {earliest: wanted[earliest]})), account_id)
        chain = stored_hash
    if last_hash is not None and chain != last_hash and not broken and not reported[0]:
        problem('checkpoint chain', 'account %d: its last hash is not the hash of its newest '
                'posting, so it no longer extends %s' % (account_id, _labels(wanted)),
                account_id)
    _missing_postings(account_id, wanted, found, problem)


def _missing_postings(account_id, wanted, found, problem):
    for posting_id, marks in wanted.items():
        if posting_id in found:
            continue
        labels = _labels({posting_id: marks})
        if posting_id is None:
            # No postings then (the plain verifier's finding); any since extend it.
            continue
        owner = Posting.select(Posting.account).where(Posting.id == posting_id).scalar()
        if owner is None:
            problem('checkpoint gone', 'account %d posting %d, its newest in %s, no longer '
                    'exists' % (account_id, posting_id, labels), account_id)
        else:
            problem('checkpoint rewritten', 'account %d posting %d, its newest in %s, now '
                    'belongs to account %d' % (account_id, posting_id, labels, owner),
                    account_id)


def _money_text(amount):
    return 'missing' if amount is None else format_amount(amount)


def _check_members(db, records, problem):
    expected = {}
    for record in records:
        for member_id, entry_id, last_hash in record.members:
            expected.setdefault(member_id, {}).setdefault(entry_id, []).append(
                (last_hash, None, record.label))
    if not expected:
        return
    current = dict(PointsMember.select(PointsMember.member_id, PointsMember.last_hash).tuples())
    entries = stream(db, PointsEntry.select(
        PointsEntry.member_id, PointsEntry.id, PointsClub.slug, PointsEntry.wallet,
        PointsEntry.payer, PointsEntry.event_type, PointsEntry.amount, PointsEntry.event_at,
        PointsEntry.expires_on, PointsEntry.balance_after, PointsEntry.transaction_id,
        PointsEntry.hash, PointsDraw.grant, PointsDraw.points)
        .join_from(PointsEntry, PointsClub, JOIN.LEFT_OUTER,
                   on=(PointsEntry.club == PointsClub.id))
        .join_from(PointsEntry, PointsDraw, JOIN.LEFT_OUTER,
                   on=(PointsDraw.entry == PointsEntry.id))
        .order_by(PointsEntry.member_id, PointsEntry.id, PointsDraw.id).tuples())
    seen = set()
    for member_id, rows in _grouped(entries):
        wanted = expected.get(member_id)
        if wanted is None:
            continue
        seen.add(member_id)
        _check_member(member_id, rows, wanted, current.get(member_id), problem)
    for member_id, wanted in expected.items():
        if member_id not in current:
            problem('checkpoint gone', 'points member %d of %s no longer exists'
                    % (member_id, _labels(wanted)), member_id)
        elif member_id not in seen:
            _missing_entries(member_id, wanted, set(), problem)


def _entries_of(rows):
    """``(entry columns, draws)`` per entry, from one member's rows joined with their draws."""
    current = None
    for row in rows:
        if current is None or row[1] != current[0][1]:
            if current is not None:
                yield current
            current = (row[:12], [])
        if row[12] is not None:
            current[1].append((row[12], row[13]))
    if current is not None:
        yield current


def _check_member(member_id, rows, wanted, last_hash, problem):
    chain = POINTS_GENESIS_HASH
    earliest = min((entry_id for entry_id in wanted if entry_id is not None), default=None)
    broken = False
    found = set()
    reported = [False]

    def noted(*args):
        reported[0] = True
        problem(*args)

    for entry, draws in _entries_of(rows):
        (_, entry_id, slug, wallet, payer, event_type, amount, event_at, expires_on,
         balance_after, transaction_id, stored_hash) = entry
        computed = None
        if (slug is not None and isinstance(event_at, datetime.datetime)
                and (expires_on is None or isinstance(expires_on, datetime.date))):
            computed = entry_hash(
                chain, entry_id=entry_id, member_id=member_id, club=slug, wallet=wallet,
                payer=payer, event_type=event_type, amount=amount, event_at=event_at,
                expires_on=expires_on, balance_after=balance_after,
                transaction_id=transaction_id, draws=draws)
        for checkpointed, _, label in wanted.get(entry_id, ()):
            found.add(entry_id)
            if stored_hash != checkpointed:
                noted('checkpoint rewritten', 'points member %d entry %d: its hash is not the '
                        'one %s recorded; the member\'s history up to it was rewritten'
                        % (member_id, entry_id, label), member_id)
            elif computed != stored_hash:
                noted('checkpoint rewritten', 'points member %d entry %d: it still carries '
                        'the hash %s recorded, but its content, its draws or its predecessor '
                        'no longer hash to it' % (member_id, entry_id, label), member_id)
        if earliest is not None and entry_id > earliest and not broken and computed != stored_hash:
            broken = True
            problem('checkpoint chain', 'points member %d entry %d, after the entry %d of %s: '
                    'its hash does not match its content, its draws or its predecessor, so the '
                    'ledger no longer extends the checkpoint' % (
                        member_id, entry_id, earliest, _labels({earliest: wanted[earliest]})),
                    member_id)
        chain = stored_hash
    if last_hash is not None and chain != last_hash and not broken and not reported[0]:
        problem('checkpoint chain', 'points member %d: its last hash is not the hash of its '
                'newest entry, so it no longer extends %s' % (member_id, _labels(wanted)),
                member_id)
    _missing_entries(member_id, wanted, found, problem)


def _missing_entries(member_id, wanted, found, problem):
    for entry_id, marks in wanted.items():
        if entry_id in found:
            continue
        labels = _labels({entry_id: marks})
        if entry_id is None:
            # A member without entries then; any entries since extend it.
            continue
        owner = (PointsEntry.select(PointsEntry.member_id).where(PointsEntry.id == entry_id)
                 .scalar())
        if owner is None:
            problem('checkpoint gone', 'points member %d entry %d, its newest in %s, no longer '
                    'exists' % (member_id, entry_id, labels), member_id)
        else:
            problem('checkpoint rewritten', 'points member %d entry %d, its newest in %s, now '
                    'belongs to member %d' % (member_id, entry_id, labels, owner), member_id)


def _check_totals(records, problem):
    journal_max_id = JournalEntry.select(fn.MAX(JournalEntry.id)).scalar()
    points_max_id = PointsEntry.select(fn.MAX(PointsEntry.id)).scalar()
    for record in records:
        for name, now, what in (('journal_max_id', journal_max_id, 'journal entry'),
                                ('points_entry_max_id', points_max_id, 'points entry')):
            then = record.totals[name]
            if then is not None and (now is None or now < then):
                problem('checkpoint gone', '%s reaches %s %d; the newest now is %s (rows '
                        'were removed)' % (record.label, what, then,
                                           'none' if now is None else now))


def _check_table(records, problem):
    """The file and the ``checkpoint`` table hold the same checkpoints (the
    table's from the file's first record on: an older file may have been
    set aside)."""
    if not records:
        return
    in_file = {record.line_sha256 for record in records}
    stored = {digest: (sequence, taken_at) for digest, sequence, taken_at in
              Checkpoint.select(Checkpoint.line_sha256, Checkpoint.sequence,
                                Checkpoint.taken_at).tuples()}
    for record in records:
        if record.line_sha256 not in stored:
            problem('checkpoint database', '%s is in the file but not in the checkpoint table'
                    % record.label)
    start = min(record.taken_at for record in records)
    for digest, (sequence, taken_at) in sorted(stored.items(), key=lambda item: item[1]):
        if digest not in in_file and taken_at >= start:
            problem('checkpoint database', 'checkpoint %d of %s is in the checkpoint table but '
                    'not in the file (its line was removed)' % (sequence, _timestamp(taken_at)))
