"""The points bank workload: grants, corrections, spends and v3 batches under faults.

Client threads change a few members' points through both points APIs over
HTTP against gunicorn on PostgreSQL: payer grants and corrections
(``POST /points/{uid}/add``), spends (``POST /points/{uid}/spend``) and
loyalty-club batches of mixed items (``POST /v3/{club}/transactions/points``),
every change with an Idempotency-Key and resent with the same key after a
timeout, a dropped connection or a 503 until its outcome is known. Reader
threads check every balance they see, a snapshot thread checks the totals in
one PostgreSQL snapshot, and the fault thread of tests/bank.py kills
workers and restarts PostgreSQL meanwhile. Afterwards every operation's
entries are looked up in the database, and every invariant is checked.

Short runs are part of the test suite (tests/e2e/test_points_bank.py). Long runs:

    .venv/bin/python tests/points_bank.py --duration 300 --kill-workers --restart-postgres 3

print a summary table and exit 1 if any invariant broke. The fresh database
is dropped after a run that passes and kept (its URL printed) after one that
does not.
"""
import argparse
import dataclasses
import datetime
import itertools
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from typing import NamedTuple, Optional
from urllib.parse import urlparse

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from balance_api.money.verify import verify_ledger  # noqa: E402
from balance_api.points.models import (NO_PAYER, PointsBalance, PointsClub,  # noqa: E402
                                       PointsEntry, PointsTransaction)
from balance_api.points.verify import verify_points  # noqa: E402
from balance_api.storage.db import database, open_database  # noqa: E402
from balance_api.web.idempotency import IdempotencyRecord  # noqa: E402
from bank import FaultyRun, add_fault_arguments, fresh_database, maintenance_url  # noqa: E402
from gunicorn_server import Server  # noqa: E402

PAYERS = ('DANNON', 'UNILEVER', 'MILLER COORS', 'ACME')
# Never grants anything: a correction naming it is refused (607).
UNKNOWN_PAYER = 'NEVER PAID'
# The payer API's club and wallet. v3 batches go there too, so both APIs
# feed one wallet and a spend draws on either's grants.
PAYER_CLUB = PAYER_WALLET = 'default'
CLUBS = (PAYER_CLUB, 'coffee')
WALLETS = ('default', 'bonus')
# Each payer's first grant to each member, written before the faults start,
# so spends meet contention from the first second.
OPENING_POINTS = 500
# Never created: a v3 item naming it is answered 'Member does not exist'.
ABSENT_MEMBER = 9999
GRANTING = ('purchase', 'campaign', 'issue')
TAKING = ('use', 'revoke', 'expire')
# Payer grants and corrections are dated at distinct seconds after this, so
# an entry's time names its operation. v3 items dated by the client are
# older still: spends draw on them first.
PAYER_EPOCH = datetime.datetime(2024, 1, 1)
V3_EPOCH = datetime.datetime(2023, 1, 1)
# A prime above any run's operation count: n * 7919 mod it is a different
# second for every n, scattered rather than increasing, so the oldest points
# by event time are seldom the ones that arrived first.
MOMENT_SLOTS = 1000003
# Receipt numbers per member that transaction ids are drawn from: few, so
# batches resend receipts and the club refuses the duplicates. An id names
# one member's receipt; one id claimed for two members at once in crossing
# orders is a case of its own (tests/e2e/test_points_concurrency.py).
RECEIPTS_PER_MEMBER = 40
# What the v3 API answers an item, besides 'ok'.
MEMBER_NOT_FOUND = 'Member does not exist'
INCORRECT_AMOUNT = 'Incorrect amount'
NOT_ENOUGH = 'Not enough points in the wallet'
DUPLICATE = 'Duplicate transaction'
# Final answers each kind may get: (status, code); refusals write nothing.
SUCCESS = {'grant': 201, 'correction': 201, 'spend': 200, 'batch': 200}
REFUSALS = {'grant': set(), 'correction': {(409, 606), (409, 607)}, 'spend': {(409, 605)},
            'batch': set()}


@dataclasses.dataclass
class PointsBankConfig:
    duration: float = 20.0
    clients: int = 16
    readers: int = 2
    members: int = 6
    workers: int = 4
    kill_workers: bool = False
    postgres_restarts: int = 0
    client_timeouts: bool = False
    seed: int = 1


class BatchItem(NamedTuple):
    """One v3 item: what was sent, and what the checks need to know of it."""
    member: Optional[int]    # None: the item names a member that does not exist
    wallet: str
    event_type: str
    amount: int
    tag: str                 # its receipt_id, unique: finds its entries
    transaction_id: Optional[str]
    sent: dict

    @property
    def sign_fits(self):
        return not (self.event_type in GRANTING and self.amount < 0
                    or self.event_type in TAKING and self.amount > 0)


@dataclasses.dataclass
class PointsOperation:
    key: str
    kind: str                 # grant, correction, spend or batch
    member: int = 0
    payer: str = ''
    points: int = 0           # the change asked for: grants positive, the rest negative
    moment: Optional[datetime.datetime] = None   # grants and corrections: the event time
    club: str = ''            # batches
    items: list = dataclasses.field(default_factory=list)
    status: int = 0           # the final definitive HTTP status, 0 when unknown
    code: int = 0
    attempts: int = 0
    answer: object = None     # the final answer's body


class Entry(NamedTuple):
    """A points entry as the checks read it."""
    member: int
    club: str
    wallet: str
    payer: str
    event_type: str
    amount: int
    event_at: datetime.datetime
    expires_on: Optional[datetime.date]
    remaining: Optional[int]
    tag: Optional[str]
    transaction_id: Optional[str]


class Outcome(NamedTuple):
    """What an operation came to: the answer its client got, or, when the
    client never learned it, the one recorded with its key (None: never applied)."""
    status: int
    code: int
    body: object


class Loaded(NamedTuple):
    """What the checks read from the database."""
    points_report: object
    money_report: object
    entries: list            # of Entry
    balances: list           # of (member, club, wallet, payer, balance)
    claims: set              # of (club, transaction id)
    records: dict            # Idempotency-Key -> (status, body)
    today: datetime.date


@dataclasses.dataclass
class Findings:
    """What matching the operations against the entries found."""
    lost: list = dataclasses.field(default_factory=list)
    doubled: list = dataclasses.field(default_factory=list)
    mismatched: list = dataclasses.field(default_factory=list)
    refused_wrote: list = dataclasses.field(default_factory=list)
    stray: list = dataclasses.field(default_factory=list)
    wrong_answers: list = dataclasses.field(default_factory=list)
    unrecorded: list = dataclasses.field(default_factory=list)
    in_doubt: int = 0
    never_applied: int = 0
    # (member, club, wallet) -> what the applied operations added and took.
    held: Counter = dataclasses.field(default_factory=Counter)
    # (club, transaction id) -> how many applied items carried it.
    applied_claims: Counter = dataclasses.field(default_factory=Counter)
    duplicates_refused: set = dataclasses.field(default_factory=set)


def _moment_text(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def _item_answer_fits(item, answer):
    """Whether a v3 item's feedback is one it may get: the item echoed, and
    a status its member, sign and transaction id allow."""
    if (answer.get('event_type'), answer.get('amount')) != (item.event_type, item.amount):
        return False
    if item.member is None:
        return answer['status'] == MEMBER_NOT_FOUND
    if not item.sign_fits:
        return answer['status'] == INCORRECT_AMOUNT
    possible = {'ok'}
    if item.amount < 0:
        possible.add(NOT_ENOUGH)
    if item.transaction_id is not None:
        possible.add(DUPLICATE)
    return answer['status'] in possible


class PointsBankRun(FaultyRun):
    def __init__(self, server, database_url, config):
        super().__init__(server, database_url, config)
        self.members = list(range(1, config.members + 1))
        self._moment_numbers = itertools.count()
        self._moment_lock = threading.Lock()
        self.final_payer_balances = {}

    def _email(self, member):
        return 'member%d@points.example' % member

    def _msisdn(self, member):
        return '+4860000%04d' % member

    def _next_moment(self):
        with self._moment_lock:
            number = next(self._moment_numbers)
        return PAYER_EPOCH + datetime.timedelta(seconds=number * 7919 % MOMENT_SLOTS)

    # -- the workload ----------------------------------------------------

    def setup(self):
        session = self.server.session()
        for member in self.members:
            session.post(self.base + '/user', timeout=30, data={
                'uid': member, 'email': self._email(member),
                'msisdn': self._msisdn(member)}).raise_for_status()
            for payer in PAYERS:
                operation = PointsOperation(uuid.uuid4().hex, 'grant', member, payer,
                                            OPENING_POINTS, self._next_moment())
                response = self._request(session, operation, 30)
                if response.status_code != 201:
                    raise RuntimeError('opening grant refused: %s' % response.text)
                operation.status, operation.attempts = 201, 1
                self._answered(operation, response)
                self.operations.append(operation)

    def run(self):
        elapsed = super().run()
        self.final_payer_balances = self._read_payer_balances()
        return elapsed

    def probe_path(self):
        return '/points/%d/balance' % self.members[0]

    def _new_operation(self, rng):
        key = uuid.uuid4().hex
        member = rng.choice(self.members)
        choice = rng.random()
        if choice < 0.25:
            return PointsOperation(key, 'grant', member, rng.choice(PAYERS),
                                   rng.randint(1, 200), self._next_moment())
        if choice < 0.4:
            payer = UNKNOWN_PAYER if rng.random() < 0.05 else rng.choice(PAYERS)
            return PointsOperation(key, 'correction', member, payer, -rng.randint(1, 150),
                                   self._next_moment())
        if choice < 0.65:
            return PointsOperation(key, 'spend', member, points=-rng.randint(1, 250))
        return self._new_batch(rng, key)

    def _new_batch(self, rng, key):
        club = rng.choice(CLUBS)
        # A few members in an order of the batch's own: the service must lock
        # them in one order whatever the batch's.
        named = rng.sample(self.members, rng.randint(1, 3))
        items = []
        for index in range(rng.randint(1, 6)):
            member = None if rng.random() < 0.05 else rng.choice(named)
            items.append(self._new_item(rng, member, '%s.%d' % (key, index)))
        return PointsOperation(key, 'batch', club=club, items=items)

    def _new_item(self, rng, member, tag):
        choice = rng.random()
        if choice < 0.45:
            event_type, amount = rng.choice(GRANTING + ('other',)), rng.randint(1, 150)
        elif choice < 0.95:
            event_type, amount = rng.choice(TAKING + ('other',)), -rng.randint(1, 200)
        else:
            # A sign that does not fit the event type.
            event_type = rng.choice(GRANTING + TAKING)
            amount = rng.randint(1, 50) * (-1 if event_type in GRANTING else 1)
        sent = {'event_type': event_type, 'amount': amount, 'receipt_id': tag}
        sent.update(self._identify(rng, member))
        wallet = 'bonus' if rng.random() < 0.2 else 'default'
        if wallet != 'default' or rng.random() < 0.5:
            sent['wallet'] = wallet
        transaction_id = None
        if rng.random() < 0.4:
            transaction_id = 'receipt-%s-%d' % (member or 'absent',
                                                rng.randint(1, RECEIPTS_PER_MEMBER))
            sent['transaction_id'] = transaction_id
        if rng.random() < 0.2:
            sent['event_date'] = _moment_text(
                V3_EPOCH + datetime.timedelta(seconds=rng.randint(0, 300 * 86400)))
        if rng.random() < 0.1:
            # An integration's own figures, stored and never used: this past
            # date must not expire the grant.
            sent.update(expiry_points_date='2020-01-01', expiry_points_balance=0)
        return BatchItem(member, wallet, event_type, amount, tag, transaction_id, sent)

    def _identify(self, rng, member):
        way = rng.choice(('id', 'id number', 'email', 'msisdn'))
        if member is None:
            if way == 'email':
                return {'identifier_type': 'email', 'identifier': 'nobody@points.example'}
            return {'identifier_type': 'id', 'identifier': str(ABSENT_MEMBER)}
        if way == 'id':
            return {'identifier_type': 'id', 'identifier': str(member)}
        if way == 'id number':
            return {'identifier_type': 'id', 'identifier': member}
        if way == 'email':
            return {'identifier_type': 'email', 'identifier': self._email(member)}
        return {'identifier_type': 'msisdn', 'identifier': self._msisdn(member)}

    def _request(self, session, operation, timeout):
        headers = {'Idempotency-Key': operation.key}
        if operation.kind == 'batch':
            return session.post(self.base + '/v3/%s/transactions/points' % operation.club,
                                json=[item.sent for item in operation.items],
                                headers=headers, timeout=timeout)
        if operation.kind == 'spend':
            return session.post(self.base + '/points/%d/spend' % operation.member,
                                json={'points': -operation.points}, headers=headers,
                                timeout=timeout)
        return session.post(self.base + '/points/%d/add' % operation.member, json={
            'payer': operation.payer, 'points': operation.points,
            'timestamp': _moment_text(operation.moment)}, headers=headers, timeout=timeout)

    def _answered(self, operation, response):
        try:
            operation.answer = response.json()
        except ValueError:
            operation.answer = None

    def _reader(self, seed):
        rng = random.Random(seed)
        session = self.server.session()
        while time.monotonic() < self.stop_at:
            member = rng.choice(self.members)
            if rng.random() < 0.5:
                path = '/points/%d/balance' % member
            else:
                path = '/v3/%s/transactions/points/by_member_id/%d' % (rng.choice(CLUBS), member)
            try:
                response = session.get(self.base + path, timeout=10)
                body = response.json()
            except (requests.RequestException, ValueError):
                session = self.server.session()
                continue
            if response.status_code >= 500:
                with self.tally.lock:
                    self.tally.server_errors.append(
                        (time.monotonic(), response.status_code, body.get('code')))
                continue
            if response.status_code != 200:
                self._reader_violation('GET %s answered %d' % (path, response.status_code))
                continue
            negative = {name: points for name, points in body.items() if points < 0}
            if negative:
                self._reader_violation('GET %s: negative %s' % (path, negative))

    def _snapshots(self):
        """In one snapshot, the balances hold what the entries sum to and what
        the grants have left."""
        db = open_database(self.database_url, pool_size=1)
        while time.monotonic() < self.stop_at:
            time.sleep(0.5)
            try:
                with db.connection_context(), db.atomic():
                    db.execute_sql('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
                    held = db.execute_sql(
                        'SELECT COALESCE(SUM(balance), 0) FROM points_balance').fetchone()[0]
                    moved, left = db.execute_sql(
                        'SELECT COALESCE(SUM(amount), 0), '
                        'COALESCE(SUM(remaining) FILTER (WHERE amount > 0), 0) '
                        'FROM points_entry').fetchone()
            except Exception:
                continue  # PostgreSQL is restarting
            with self.tally.lock:
                self.tally.snapshot_checks += 1
                if not held == moved == left:
                    self.tally.snapshot_violations.append(
                        'balances hold %s, entries sum to %s, grants have %s left'
                        % (held, moved, left))
        db.close_all()

    def _read_payer_balances(self):
        """Every member's payer balances, as the payer API answers once the run is over."""
        balances = {}
        http = self.server.session()
        for member in self.members:
            for _ in range(50):
                try:
                    response = http.get(self.base + '/points/%d/balance' % member, timeout=10)
                except requests.RequestException:
                    response = None
                if response is not None and response.status_code == 200:
                    balances[member] = response.json()
                    break
                time.sleep(0.2)
        return balances

    # -- the checks ------------------------------------------------------

    def _load(self):
        """What the checks read from the database, after the run."""
        db = open_database(self.database_url, pool_size=1)
        database.initialize(db)
        with db.connection_context():
            points_report = verify_points(db)
            money_report = verify_ledger(db)
            rows = (PointsEntry.select(PointsEntry.member_id, PointsClub.slug,
                                       PointsEntry.wallet, PointsEntry.payer,
                                       PointsEntry.event_type, PointsEntry.amount,
                                       PointsEntry.event_at, PointsEntry.expires_on,
                                       PointsEntry.remaining, PointsEntry.receipt_id,
                                       PointsEntry.transaction_id)
                    .join(PointsClub, on=(PointsEntry.club == PointsClub.id))
                    .order_by(PointsEntry.id).tuples())
            entries = [Entry(*row) for row in rows]
            balances = list(
                PointsBalance.select(PointsBalance.member_id, PointsClub.slug,
                                     PointsBalance.wallet, PointsBalance.payer,
                                     PointsBalance.balance)
                .join(PointsClub, on=(PointsBalance.club == PointsClub.id)).tuples())
            claims = set(PointsTransaction.select(PointsClub.slug,
                                                  PointsTransaction.transaction_id)
                         .join(PointsClub, on=(PointsTransaction.club == PointsClub.id))
                         .tuples())
            records = {key: (status, json.loads(body)) for key, status, body in
                       IdempotencyRecord.select(IdempotencyRecord.key, IdempotencyRecord.status,
                                                IdempotencyRecord.body).tuples()}
            today = db.execute_sql("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
        db.close_all()
        return Loaded(points_report, money_report, entries, balances, claims, records, today)

    def outcome(self, operation, records):
        """The operation's final answer: the client's, or its key's record."""
        if operation.status:
            return Outcome(operation.status, operation.code, operation.answer)
        record = records.get(operation.key)
        if record is None:
            return None
        status, body = record
        code = body.get('code', 0) if isinstance(body, dict) and status >= 400 else 0
        return Outcome(status, code, body)

    def check(self):
        """Every invariant, as (name, passed, detail)."""
        loaded = self._load()
        found = self._match_operations(loaded)
        balances = self._balance_findings(loaded, found)
        claims = self._claim_findings(loaded, found)
        points_report, money_report = loaded.points_report, loaded.money_report

        def listed(problems):
            return str(problems[:5])

        results = [
            ('verify_points: balances, remainders, draws, hash chains', points_report.ok,
             '; '.join('%s: %s' % (p.kind, p.detail) for p in points_report.problems[:5])),
            ('verify_ledger (money)', money_report.ok,
             '; '.join('%s: %s' % (p.kind, p.detail) for p in money_report.problems[:5])),
            ('every success written: none lost', not found.lost, listed(found.lost)),
            ('every success written once: none doubled', not found.doubled,
             listed(found.doubled)),
            ('entries carry the member, club, wallet, payer, type and points asked for',
             not found.mismatched, listed(found.mismatched)),
            ('refused operations and items wrote nothing', not found.refused_wrote,
             listed(found.refused_wrote)),
            ('no entry without an operation', not found.stray, listed(found.stray)),
            ('answers as expected (successes, refusals 605/606/607, item statuses fit)',
             not found.wrong_answers, listed(found.wrong_answers)),
            ('every answer is the one recorded with its key', not found.unrecorded,
             listed(found.unrecorded)),
            ('outcomes in doubt resolved by their key (%d in doubt, %d of them never applied)'
             % (found.in_doubt, found.never_applied), True, ''),
            ('no balance negative, no grant overdrawn', not balances['negative'],
             listed(balances['negative'])),
            ('per member, club, wallet and payer: balance = its entries = its grants left',
             not balances['unequal'], listed(balances['unequal'])),
            ('per member wallet: balance = points granted - drawn by the answered operations',
             not balances['wallets off'], listed(balances['wallets off'])),
            ('in total: points granted - drawn = balances', not balances['total off'],
             balances['total off']),
            ('the payer API answers the stored balances', not balances['payer API off'],
             str(balances['payer API off'][:3])),
            ('no v3 transaction id applied twice', not claims['applied twice'],
             listed(claims['applied twice'])),
            ('claimed transaction ids are exactly those of applied items',
             not claims['claims off'], listed(claims['claims off'])),
            ('every "Duplicate transaction" names an id already claimed',
             not claims['unfounded duplicates'], listed(claims['unfounded duplicates'])),
            ('readers saw no negative balance', not self.tally.reader_violations,
             listed(self.tally.reader_violations)),
            ('snapshot totals consistent (%d snapshots)' % self.tally.snapshot_checks,
             self.tally.snapshot_checks > 0 and not self.tally.snapshot_violations,
             listed(self.tally.snapshot_violations)),
        ]
        return results + self.service_results()

    def _match_operations(self, loaded):
        """Every operation's outcome against the entries that name it."""
        found = Findings()
        # The entries by what names their operation: a v3 item's receipt tag;
        # a payer grant's or correction's member and time; a payer spend is
        # known only by its member and the payers and points it drew.
        tagged, timed, spent = defaultdict(list), defaultdict(list), defaultdict(Counter)
        for entry in loaded.entries:
            in_payer_wallet = (entry.club, entry.wallet) == (PAYER_CLUB, PAYER_WALLET)
            if entry.tag is not None:
                tagged[entry.tag].append(entry)
            elif in_payer_wallet and entry.event_type in ('issue', 'revoke'):
                timed[(entry.member, entry.event_at)].append(entry)
            elif in_payer_wallet and entry.event_type == 'use':
                spent[entry.member][(entry.payer, entry.amount)] += 1
            else:
                found.stray.append(entry)

        drawn = defaultdict(Counter)
        for op in self.operations:
            if not op.status:
                found.in_doubt += 1
            elif loaded.records.get(op.key) != (op.status, op.answer):
                found.unrecorded.append((op.key, op.status, loaded.records.get(op.key)))
            outcome = self.outcome(op, loaded.records)
            if outcome is None:
                found.never_applied += 1
            applied = outcome is not None and outcome.status == SUCCESS[op.kind]
            if outcome is not None and not applied and (
                    (outcome.status, outcome.code) not in REFUSALS[op.kind]):
                found.wrong_answers.append((op.kind, op.key, outcome.status, outcome.code))
            if op.kind in ('grant', 'correction'):
                self._match_payer_change(op, applied, timed.pop((op.member, op.moment), []),
                                         found)
            elif op.kind == 'spend':
                if applied:
                    parts = Counter((part['payer'], part['points']) for part in outcome.body)
                    if (sum(part['points'] for part in outcome.body) != op.points
                            or len(parts) != len(outcome.body)):
                        found.wrong_answers.append(('spend', op.key, outcome.body))
                    drawn[op.member].update(parts)
                    found.held[(op.member, PAYER_CLUB, PAYER_WALLET)] += op.points
            else:
                feedback = outcome.body if applied else [None] * len(op.items)
                if len(feedback) != len(op.items):
                    found.wrong_answers.append(('batch', op.key, feedback))
                    feedback = [None] * len(op.items)
                for item, answer in zip(op.items, feedback):
                    self._match_item(op.club, item, answer, tagged.pop(item.tag, []), found)

        found.stray += [entry for entries in timed.values() for entry in entries]
        found.stray += [entry for entries in tagged.values() for entry in entries]
        for member in set(spent) | set(drawn):
            missing = drawn[member] - spent[member]
            extra = spent[member] - drawn[member]
            if missing:
                found.lost.append(('spends of member %d' % member, dict(missing)))
            if extra:
                found.doubled.append(('spends of member %d' % member, dict(extra)))
        return found

    @staticmethod
    def _match_payer_change(op, applied, entries, found):
        if not applied:
            if entries:
                found.refused_wrote.append((op.key, entries))
            return
        found.held[(op.member, PAYER_CLUB, PAYER_WALLET)] += op.points
        if not entries:
            found.lost.append((op.key, op.kind))
        elif len(entries) > 1:
            found.doubled.append((op.key, entries))
        elif [(entry.payer, entry.event_type, entry.amount) for entry in entries] != [
                (op.payer, 'issue' if op.kind == 'grant' else 'revoke', op.points)]:
            found.mismatched.append((op.key, entries))

    @staticmethod
    def _match_item(club, item, answer, entries, found):
        status = None if answer is None else answer['status']
        if answer is not None and not _item_answer_fits(item, answer):
            found.wrong_answers.append(('batch item', item.sent, answer))
        if status != 'ok':
            if entries:
                found.refused_wrote.append((item.tag, status, entries))
            if status == DUPLICATE:
                found.duplicates_refused.add((club, item.transaction_id))
            return
        found.held[(item.member, club, item.wallet)] += item.amount
        if item.transaction_id is not None:
            found.applied_claims[(club, item.transaction_id)] += 1
        payers = [entry.payer for entry in entries]
        if not entries:
            found.lost.append((item.tag, item.sent))
        elif len(set(payers)) != len(payers) or item.amount > 0 and len(entries) > 1:
            # A grant writes one entry; a spend one per payer it drew on.
            found.doubled.append((item.tag, entries))
        elif any((entry.member, entry.club, entry.wallet, entry.event_type,
                  entry.transaction_id) != (item.member, club, item.wallet, item.event_type,
                                            item.transaction_id) for entry in entries) or (
                sum(entry.amount for entry in entries) != item.amount) or (
                item.amount > 0 and payers != [NO_PAYER]):
            found.mismatched.append((item.tag, item.sent, entries))

    def _balance_findings(self, loaded, found):
        """Balances against their entries, their grants' remainders and the answers."""
        stored = {(member, club, wallet, payer): balance
                  for member, club, wallet, payer, balance in loaded.balances}
        summed, left = Counter(), Counter()
        negative = [(slot, balance) for slot, balance in stored.items() if balance < 0]
        for entry in loaded.entries:
            slot = (entry.member, entry.club, entry.wallet, entry.payer)
            summed[slot] += entry.amount
            if entry.amount > 0:
                if entry.remaining is None or not 0 <= entry.remaining <= entry.amount:
                    negative.append(entry)
                elif entry.expires_on is None or entry.expires_on >= loaded.today:
                    left[slot] += entry.remaining
        unequal = [(slot, stored.get(slot), summed[slot], left[slot])
                   for slot in sorted(set(stored) | set(summed))
                   if not stored.get(slot) == summed[slot] == left[slot]]
        held = Counter()
        for (member, club, wallet, _), balance in stored.items():
            held[(member, club, wallet)] += balance
        wallets_off = [(slot, held[slot], found.held[slot])
                       for slot in sorted(set(held) | set(found.held))
                       if held[slot] != found.held[slot]]
        granted = sum(entry.amount for entry in loaded.entries if entry.amount > 0)
        drawn = -sum(entry.amount for entry in loaded.entries if entry.amount < 0)
        total = sum(stored.values())
        payer_api_off = []
        for member in self.members:
            in_database = {payer: balance for (owner, club, wallet, payer), balance
                           in stored.items() if payer != NO_PAYER
                           and (owner, club, wallet) == (member, PAYER_CLUB, PAYER_WALLET)}
            if self.final_payer_balances.get(member) != in_database:
                payer_api_off.append((member, self.final_payer_balances.get(member),
                                      in_database))
        return {'negative': negative, 'unequal': unequal, 'wallets off': wallets_off,
                'total off': '' if granted - drawn == total else '%d - %d vs %d' % (
                    granted, drawn, total),
                'payer API off': payer_api_off}

    @staticmethod
    def _claim_findings(loaded, found):
        """The clubs' transaction ids against the items that claimed them."""
        claimed_by = defaultdict(set)
        for entry in loaded.entries:
            if entry.transaction_id is not None:
                claimed_by[(entry.club, entry.transaction_id)].add(entry.tag)
        applied_twice = sorted(
            [claim for claim, tags in claimed_by.items() if len(tags) > 1]
            + [claim for claim, times in found.applied_claims.items() if times > 1])
        return {'applied twice': applied_twice,
                'claims off': sorted(loaded.claims ^ set(found.applied_claims)),
                'unfounded duplicates': sorted(found.duplicates_refused - loaded.claims)}

    def summary(self, results, elapsed):
        lines = ['points bank run: %.0f s, %d clients, %d readers, %d members, %d payers, '
                 '%d workers' % (elapsed, self.config.clients, self.config.readers,
                                 len(self.members), len(PAYERS), self.config.workers), '',
                 '| operations | started | succeeded | refused | outcome never learned '
                 '| retried |', '|---|---|---|---|---|---|']
        for kind in ('grant', 'correction', 'spend', 'batch'):
            ops = [op for op in self.operations if op.kind == kind]
            succeeded = sum(op.status == SUCCESS[kind] for op in ops)
            unknown = sum(not op.status for op in ops)
            lines.append('| %s | %d | %d | %d | %d | %d |' % (
                kind, len(ops), succeeded, len(ops) - succeeded - unknown, unknown,
                sum(op.attempts > 1 for op in ops)))
        item_statuses = Counter(answer['status'] for op in self.operations
                                if op.kind == 'batch' and op.status == 200
                                for answer in op.answer)
        lines += ['', '| batch items answered | count |', '|---|---|']
        lines += ['| %s | %d |' % item for item in sorted(item_statuses.items())]
        lines += [''] + self.fault_lines() + [''] + self.verdict_lines(results)
        return '\n'.join(lines)


def run_points_bank(database_url, config):
    """Start a server on ``database_url``, run the workload, return (run, results, elapsed)."""
    server = Server(database_url, workers=config.workers)
    try:
        run = PointsBankRun(server, database_url, config)
        elapsed = run.run()
    finally:
        server.stop()
    return run, run.check(), elapsed


def _drop_database(admin_url, url):
    admin = open_database(maintenance_url(admin_url))
    admin.connect()
    admin.connection().autocommit = True
    admin.execute_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % urlparse(url).path[1:])
    admin.close_all()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_fault_arguments(parser)
    parser.add_argument('--clients', type=int, default=16)
    parser.add_argument('--readers', type=int, default=2)
    parser.add_argument('--members', type=int, default=6)
    args = parser.parse_args(argv)
    config = PointsBankConfig(args.duration, args.clients, args.readers, args.members,
                              args.workers, args.kill_workers, args.restart_postgres,
                              args.client_timeouts, args.seed)
    url = fresh_database(args.database_url, prefix='balance_api_points_bank')
    run, results, elapsed = run_points_bank(url, config)
    print(run.summary(results, elapsed))
    passed = all(ok for _, ok, _ in results)
    if passed:
        _drop_database(args.database_url, url)
    else:
        print('\nthe database is kept for a look: %s' % url)
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
