"""The points ledger: grants, spends, corrections and expiries, each traced to its payer.

Every change runs in one transaction that first locks the member's points
row (PostgreSQL ``SELECT ... FOR UPDATE``; on SQLite the write lock), so
one member's changes happen one at a time and in id order, and every rule
is checked before the first write: a refused change writes nothing.

Spending draws on the oldest unspent grants first, by event time (equal
times by arrival), across the payers of the wallet; a correction (a
negative entry naming a payer) draws on that payer's oldest grants. Each
negative entry records its draws, and each grant keeps its remainder, so
no grant is drawn twice and no payer goes negative. A grant whose expiry
date has passed (in UTC) is neither spendable nor counted, even before
``expire_due`` has written its ``expire`` entry.
"""
import datetime
import json
from typing import NamedTuple

import peewee

from ..clock import utc_now
from ..money import members
from ..money.errors import UserNotFound
from ..storage.db import is_postgres, write_transaction
from ..web import metrics
from . import errors, pg_sql
from .chain import GENESIS_HASH, entry_hash
from .models import (DEFAULT_CLUB, DEFAULT_WALLET, NO_PAYER, PointsBalance, PointsClub,
                     PointsDraw, PointsEntry, PointsMember, PointsTransaction)

MAX_BALANCE = 10 ** 18 - 1
POLICIES = ('fifo', 'expiring-first')
# Event types that add points, and those that take them; 'other' does either.
GRANTING = ('purchase', 'campaign', 'issue')
TAKING = ('use', 'revoke', 'expire')
EVENT_TYPES = GRANTING + TAKING + ('other',)


class Details(NamedTuple):
    """What an entry carries besides its points, as the client sent it."""
    event: object = None
    message: object = None
    store_id: object = None
    receipt_id: object = None
    properties: object = None  # a dict, stored as JSON
    reported: object = None    # a dict, stored as JSON
    key_name: object = None    # the API key that made the change


class Written(NamedTuple):
    """One entry written: its id, payer, signed points and the wallet's balance after it."""
    id: int
    payer: str
    points: int
    balance_after: int


class _Grant(NamedTuple):
    id: int
    payer: str
    remaining: int


class _Club(NamedTuple):
    id: int
    slug: str
    policy: str


# points_post's refusals (migration 0006), by their API error code.
_SERVER_REFUSALS = {error.code: error for error in (
    UserNotFound, errors.NotEnoughPoints, errors.NotEnoughPayerPoints, errors.UnknownPayer,
    errors.PointsBalanceOverflow, errors.DuplicateTransaction)}

# Grants read per query while drawing.
_GRANTS_PER_PAGE = 200


class PointsLedger:
    def __init__(self, db, clock=utc_now):
        self.db = db
        self.clock = clock

    # -- reads ---------------------------------------------------------------

    def payer_balances(self, member_id, club=DEFAULT_CLUB, wallet=DEFAULT_WALLET):
        """``{payer: points}`` of every payer the member has ever had in the wallet."""
        self._existing_member(member_id)
        club_id = self._club_id(club)
        if club_id is None:
            return {}
        return self._spendable_by_payer(member_id, club_id, wallet)

    def wallet_balances(self, member_id, club):
        """``{wallet: points}`` of the member in ``club`` (spendable points only)."""
        club_id = self._club_id(club)
        if club_id is None:
            return {}
        held = {}
        for wallet, balance in (PointsBalance.select(PointsBalance.wallet,
                                                     peewee.fn.SUM(PointsBalance.balance))
                                .where((PointsBalance.member_id == member_id)
                                       & (PointsBalance.club == club_id))
                                .group_by(PointsBalance.wallet).tuples()):
            held[wallet] = int(balance)
        for wallet, _, expired in self._expired_unswept(member_id, club_id):
            held[wallet] -= expired
        return dict(sorted(held.items()))

    # -- changes -------------------------------------------------------------

    def post(self, member_id, points, *, event_type, event_at, club=DEFAULT_CLUB,
             wallet=DEFAULT_WALLET, payer=NO_PAYER, expires_on=None, transaction_id=None,
             details=Details()):
        """Post one movement of ``points`` (signed, not zero); returns the
        entries written (``Written``), one per payer drawn for a spend.

        Positive: a grant from ``payer``. Negative with a payer: a correction
        drawing on that payer's oldest unspent grants. Negative without one:
        a spend across the wallet's payers, oldest points first.
        """
        self._check_sign(event_type, points)
        if is_postgres(self.db):
            return self._post_on_server(member_id, points, event_type, event_at, club, wallet,
                                        payer, expires_on, transaction_id, details)
        with write_transaction(self.db):
            found = self._club(club)
            self._lock_members([member_id])
            if transaction_id is not None and self._transaction_applied(found.id, transaction_id):
                raise errors.DuplicateTransaction()
            if points > 0:
                return [self._grant(member_id, found, wallet, payer, points, event_type,
                                    event_at, expires_on, transaction_id, details)]
            return self._take(member_id, found, wallet, payer, -points, event_type, event_at,
                              transaction_id, details)

    def spend(self, member_id, points, club=DEFAULT_CLUB, wallet=DEFAULT_WALLET, key_name=None):
        """Spend ``points`` (positive) now, oldest first; returns ``[(payer, -points)]``
        in the order drawn."""
        written = self.post(member_id, -points, event_type='use', event_at=self.clock(),
                            club=club, wallet=wallet, details=Details(key_name=key_name))
        return [(entry.payer, entry.points) for entry in written]

    def lock_members(self, member_ids):
        """Lock these members' points rows in ascending order, inside the
        caller's transaction (a batch touching several members)."""
        self._lock_members(member_ids)

    def lock_transaction_ids(self, club, transaction_ids):
        """After ``lock_members``: the client transaction ids a batch may
        claim, in a fixed order (PostgreSQL; SQLite has one writer at a time)."""
        if is_postgres(self.db):
            pg_sql.lock_transaction_ids(self.db, club, transaction_ids)

    def set_policy(self, club, policy):
        if policy not in POLICIES:
            raise ValueError('policy is one of %s' % ', '.join(POLICIES))
        with write_transaction(self.db):
            PointsClub.update(policy=policy).where(PointsClub.id == self._club(club).id).execute()

    def expire_due(self, progress=None):
        """Write an ``expire`` entry for every grant whose expiry date has
        passed and that still holds points; returns how many. Each member is
        done in a transaction of its own, so traffic goes on meanwhile, and a
        second run finds nothing left to do."""
        today = self.clock().date()
        written = 0
        while True:
            due = (PointsEntry.select(PointsEntry.member_id).distinct()
                   .where((PointsEntry.remaining > 0) & (PointsEntry.expires_on < today))
                   .order_by(PointsEntry.member_id).limit(500).tuples())
            members_due = [member_id for member_id, in due]
            if not members_due:
                return written
            for member_id in members_due:
                written += self._expire_member(member_id, today)
                if progress is not None:
                    progress(written)

    # -- internals -----------------------------------------------------------

    def _post_on_server(self, member_id, points, event_type, event_at, club, wallet, payer,
                        expires_on, transaction_id, details):
        # One statement: alone it is its own transaction (a refusal leaves
        # nothing behind); inside a caller's (an idempotency key's, a batch's)
        # it joins it.
        now = self.clock()
        rows = pg_sql.post(
            self.db, member_id, points, club=club, wallet=wallet, payer=payer,
            event_type=event_type, event_at=event_at, expires_on=expires_on,
            transaction_id=transaction_id, event=details.event, message=details.message,
            store_id=details.store_id, receipt_id=details.receipt_id,
            properties=_json_text(details.properties), reported=_json_text(details.reported),
            today=now.date(), now=now, key_name=details.key_name)
        if rows[0].refusal:
            raise _SERVER_REFUSALS[rows[0].refusal]()
        metrics.after_commit(self.db, metrics.points_posted, event_type, points)
        return [Written(row.id, row.payer, row.points, row.balance_after) for row in rows]

    @staticmethod
    def _check_sign(event_type, points):
        if event_type not in EVENT_TYPES:
            raise ValueError('unknown event type %r' % event_type)
        if not points or (event_type in GRANTING and points < 0) or (
                event_type in TAKING and points > 0):
            raise errors.IncorrectAmountSign()

    def _existing_member(self, member_id):
        if not members.exists(self.db, member_id):
            raise UserNotFound()

    def _club(self, slug):
        """The club, created on first use."""
        query = PointsClub.select(PointsClub.id, PointsClub.slug, PointsClub.policy).where(
            PointsClub.slug == slug).tuples()
        found = query.first()
        if found is None:
            PointsClub.insert(slug=slug, created_at=self.clock()).on_conflict_ignore().execute()
            found = query.clone().first()
        return _Club(*found)

    @staticmethod
    def _club_id(slug):
        return PointsClub.select(PointsClub.id).where(PointsClub.slug == slug).scalar()

    def _lock_members(self, member_ids):
        for member_id in sorted(set(member_ids)):
            self._existing_member(member_id)
            (PointsMember.insert(member_id=member_id, last_hash=GENESIS_HASH,
                                 created_at=self.clock())
             .on_conflict_ignore().execute())
        query = PointsMember.select(PointsMember.member_id).where(
            PointsMember.member_id.in_(sorted(set(member_ids)))).order_by(PointsMember.member_id)
        if is_postgres(self.db):
            query = query.for_update()
        list(query.tuples())

    @staticmethod
    def _transaction_applied(club_id, transaction_id):
        return PointsTransaction.select().where(
            (PointsTransaction.club == club_id)
            & (PointsTransaction.transaction_id == transaction_id)).exists()

    def _claim_transaction(self, club_id, transaction_id):
        # The last check before the first write (a concurrent claim of the same
        # id by another member's change): a refusal before it leaves no claim.
        if transaction_id is None:
            return
        claimed = (PointsTransaction.insert(club=club_id, transaction_id=transaction_id,
                                            created_at=self.clock())
                   .on_conflict_ignore().as_rowcount().execute())
        if not claimed:
            raise errors.DuplicateTransaction()

    def _today(self):
        return self.clock().date()

    def _expired_unswept(self, member_id, club_id, wallet=None):
        """``(wallet, payer, points)`` still held by grants that have expired."""
        query = (PointsEntry.select(PointsEntry.wallet, PointsEntry.payer,
                                    peewee.fn.SUM(PointsEntry.remaining))
                 .where((PointsEntry.member_id == member_id) & (PointsEntry.club == club_id)
                        & (PointsEntry.remaining > 0) & (PointsEntry.expires_on < self._today()))
                 .group_by(PointsEntry.wallet, PointsEntry.payer))
        if wallet is not None:
            query = query.where(PointsEntry.wallet == wallet)
        return [(wallet, payer, int(points)) for wallet, payer, points in query.tuples()]

    def _spendable_by_payer(self, member_id, club_id, wallet):
        held = dict(PointsBalance.select(PointsBalance.payer, PointsBalance.balance)
                    .where((PointsBalance.member_id == member_id)
                           & (PointsBalance.club == club_id)
                           & (PointsBalance.wallet == wallet))
                    .order_by(PointsBalance.id).tuples())
        for _, payer, expired in self._expired_unswept(member_id, club_id, wallet):
            held[payer] -= expired
        return held

    def _grants(self, member_id, club_id, wallet, policy, payer=None):
        """Unspent, unexpired grants in the order they are drawn, a page at a
        time (the member is locked: nothing changes them meanwhile)."""
        today = self._today()
        query = (PointsEntry.select(PointsEntry.id, PointsEntry.payer, PointsEntry.remaining)
                 .where((PointsEntry.member_id == member_id) & (PointsEntry.club == club_id)
                        & (PointsEntry.wallet == wallet) & (PointsEntry.remaining > 0)
                        & (PointsEntry.expires_on.is_null() | (PointsEntry.expires_on >= today))))
        if payer is not None:
            query = query.where(PointsEntry.payer == payer)
        if policy == 'expiring-first':
            query = query.order_by(PointsEntry.expires_on.asc(nulls='LAST'),
                                   PointsEntry.event_at, PointsEntry.id)
        else:
            query = query.order_by(PointsEntry.event_at, PointsEntry.id)
        page = 0
        while True:
            rows = list(query.limit(_GRANTS_PER_PAGE).offset(page * _GRANTS_PER_PAGE).tuples())
            for row in rows:
                yield _Grant(*row)
            if len(rows) < _GRANTS_PER_PAGE:
                return
            page += 1

    def _grant(self, member_id, club, wallet, payer, points, event_type, event_at,
               expires_on, transaction_id, details):
        club_id = club.id
        spendable = self._spendable_by_payer(member_id, club_id, wallet)
        counted = points if expires_on is None or expires_on >= self._today() else 0
        after = sum(spendable.values()) + counted
        held = (PointsBalance.select(PointsBalance.balance)
                .where((PointsBalance.member_id == member_id) & (PointsBalance.club == club_id)
                       & (PointsBalance.wallet == wallet) & (PointsBalance.payer == payer))
                .scalar()) or 0
        if held + points > MAX_BALANCE:
            raise errors.PointsBalanceOverflow()
        self._claim_transaction(club_id, transaction_id)
        written = self._write_entry(member_id, club, wallet, payer, points, event_type,
                                    event_at, expires_on, transaction_id, details, after, [])
        self._add_to_balance(member_id, club_id, wallet, payer, points)
        return written

    def _take(self, member_id, club, wallet, payer, points, event_type, event_at,
              transaction_id, details):
        club_id = club.id
        spendable = self._spendable_by_payer(member_id, club_id, wallet)
        if payer != NO_PAYER:
            if payer not in spendable:
                raise errors.UnknownPayer()
            if spendable[payer] < points:
                raise errors.NotEnoughPayerPoints()
        elif sum(spendable.values()) < points:
            raise errors.NotEnoughPoints()

        # Draws by payer, payers in the order first drawn.
        draws = {}
        wanted = points
        for grant in self._grants(member_id, club_id, wallet, club.policy,
                                  payer if payer != NO_PAYER else None):
            taken = min(wanted, grant.remaining)
            draws.setdefault(grant.payer, []).append((grant.id, taken))
            wanted -= taken
            if not wanted:
                break
        if wanted:
            # The balances said there was enough: they and the grants disagree.
            raise RuntimeError('member %d: balances and unspent grants disagree' % member_id)
        self._claim_transaction(club_id, transaction_id)

        balance = sum(spendable.values())
        written = []
        for drawn_payer, payer_draws in draws.items():
            taken = sum(points for _, points in payer_draws)
            balance -= taken
            written.append(self._write_entry(
                member_id, club, wallet, drawn_payer, -taken, event_type, event_at, None,
                transaction_id, details, balance, payer_draws))
            for grant_id, drawn in payer_draws:
                PointsEntry.update(remaining=PointsEntry.remaining - drawn).where(
                    PointsEntry.id == grant_id).execute()
            self._add_to_balance(member_id, club_id, wallet, drawn_payer, -taken)
        return written

    def _expire_member(self, member_id, today):
        with write_transaction(self.db):
            self._lock_members([member_id])
            grants = list(PointsEntry.select(PointsEntry.id, PointsEntry.club, PointsEntry.wallet,
                                             PointsEntry.payer, PointsEntry.remaining)
                          .where((PointsEntry.member_id == member_id)
                                 & (PointsEntry.remaining > 0)
                                 & (PointsEntry.expires_on < today))
                          .order_by(PointsEntry.id).tuples())
            for grant_id, club_id, wallet, payer, remaining in grants:
                club = _Club(*PointsClub.select(PointsClub.id, PointsClub.slug, PointsClub.policy)
                             .where(PointsClub.id == club_id).tuples().get())
                spendable = self._spendable_by_payer(member_id, club_id, wallet)
                self._write_entry(member_id, club, wallet, payer, -remaining, 'expire',
                                  self.clock(), None, None, Details(),
                                  sum(spendable.values()), [(grant_id, remaining)])
                PointsEntry.update(remaining=0).where(PointsEntry.id == grant_id).execute()
                self._add_to_balance(member_id, club_id, wallet, payer, -remaining)
            return len(grants)

    def _add_to_balance(self, member_id, club_id, wallet, payer, points):
        changed = (PointsBalance.update(balance=PointsBalance.balance + points)
                   .where((PointsBalance.member_id == member_id) & (PointsBalance.club == club_id)
                          & (PointsBalance.wallet == wallet) & (PointsBalance.payer == payer))
                   .execute())
        if not changed:
            PointsBalance.insert(member_id=member_id, club=club_id, wallet=wallet, payer=payer,
                                 balance=points).execute()

    def _next_entry_id(self):
        if is_postgres(self.db):
            return self.db.execute_sql(
                "SELECT nextval(pg_get_serial_sequence('points_entry', 'id'))").fetchone()[0]
        # SQLite: the write lock is held, so no other writer can take it meanwhile.
        return (PointsEntry.select(peewee.fn.MAX(PointsEntry.id)).scalar() or 0) + 1

    def _write_entry(self, member_id, club, wallet, payer, points, event_type, event_at,
                     expires_on, transaction_id, details, balance_after, draws):
        previous = PointsMember.select(PointsMember.last_hash).where(
            PointsMember.member_id == member_id).scalar()
        entry_id = self._next_entry_id()
        digest = entry_hash(
            previous, entry_id=entry_id, member_id=member_id, club=club.slug, wallet=wallet,
            payer=payer, event_type=event_type, amount=points, event_at=event_at,
            expires_on=expires_on, balance_after=balance_after, transaction_id=transaction_id,
            draws=draws)
        PointsEntry.insert(
            id=entry_id, member_id=member_id, club=club.id, wallet=wallet, payer=payer,
            event_type=event_type, amount=points, event_at=event_at, expires_on=expires_on,
            remaining=points if points > 0 else None, balance_after=balance_after,
            transaction_id=transaction_id, event=details.event, message=details.message,
            store_id=details.store_id, receipt_id=details.receipt_id,
            properties=_json_text(details.properties), reported=_json_text(details.reported),
            created_at=self.clock(), hash=digest, key_name=details.key_name).execute()
        if draws:
            PointsDraw.insert_many([{'entry': entry_id, 'grant': grant_id, 'points': drawn}
                                    for grant_id, drawn in draws]).execute()
        PointsMember.update(last_hash=digest).where(PointsMember.member_id == member_id).execute()
        metrics.after_commit(self.db, metrics.points_posted, event_type, points)
        return Written(entry_id, payer, points, balance_after)


def _json_text(value):
    return None if value is None else json.dumps(value, sort_keys=True, separators=(',', ':'),
                                                 default=str)


def utc_datetime(moment):
    """A datetime as naive UTC: converted when it has an offset, read as UTC when not."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment
