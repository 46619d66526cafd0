"""The points verifier: recomputes every points balance, grant remainder,
draw and member chain from the entries.

It streams: entries with their draws, grants with the points drawn from
them, balance rows and members each come through one cursor ordered by
member, merged in Python, so memory holds one member's balances at a time.

An entry's ``balance_after`` is the wallet's spendable balance, which leaves
out grants already past their expiry date by the writer's clock. It is
recomputed exactly while the wallet has never had a grant with an expiry
date; after that it is only held to be non-negative (the chain still covers
it). The limits of the money verifier apply too: the chains are unkeyed, so
a member's newest entries removed together with a matching rewind of the
member and balance rows, or every hash rewritten consistently, go unseen.
"""
import datetime
from typing import List, NamedTuple, Optional

from peewee import JOIN, fn

from ..findings import Findings, stream
from ..storage.db import read_snapshot
from .chain import GENESIS_HASH, entry_hash
from .models import PointsBalance, PointsClub, PointsDraw, PointsEntry, PointsMember

PROGRESS_EVERY = 100000


class PointsProblem(NamedTuple):
    """One finding; the id fields name the rows it is about (None: not applicable)."""
    kind: str
    detail: str
    member_id: Optional[int] = None
    entry_id: Optional[int] = None
    draw_id: Optional[int] = None


class PointsReport(NamedTuple):
    members: int
    entries: int
    draws: int
    problems: List[PointsProblem]
    # Problems found beyond ``max_problems``, counted but not listed.
    unlisted: int = 0

    @property
    def ok(self):
        return not self.problems and not self.unlisted

    @property
    def empty(self):
        return not (self.members or self.entries or self.draws)


class _ByMember:
    """Rows of one cursor ordered by member (the first column), taken a member at a time."""

    def __init__(self, rows):
        self.rows = rows
        self.pending = next(rows, None)

    def next_member(self):
        return None if self.pending is None else self.pending[0]

    def take(self, member_id):
        while self.pending is not None and self.pending[0] == member_id:
            yield self.pending
            self.pending = next(self.rows, None)


def verify_points(db, progress=None, max_problems=1000, progress_every=PROGRESS_EVERY):
    """Check the whole points ledger, in one snapshot.

    ``progress('points entries', count)`` is called after every
    ``progress_every`` entries. At most ``max_problems`` problems are listed;
    the rest are only counted (``PointsReport.unlisted``).
    """
    if progress_every < 1:
        raise ValueError('progress_every must be positive')
    problem = Findings(PointsProblem, max_problems)
    with read_snapshot(db):
        counts = _check_members(db, problem, progress, progress_every)
        _check_orphan_draws(db, problem)
    return PointsReport(*counts, problem.listed, problem.unlisted)


def _entries_with_draws(db):
    grant = PointsEntry.alias('grant_entry')
    return stream(db, PointsEntry.select(
        PointsEntry.member_id, PointsEntry.id, PointsEntry.club, PointsClub.slug,
        PointsEntry.wallet, PointsEntry.payer, PointsEntry.event_type, PointsEntry.amount,
        PointsEntry.event_at, PointsEntry.expires_on, PointsEntry.balance_after,
        PointsEntry.transaction_id, PointsEntry.hash,
        PointsDraw.id, PointsDraw.grant, PointsDraw.points,
        grant.id, grant.member_id, grant.club, grant.wallet, grant.payer, grant.amount)
        .join_from(PointsEntry, PointsClub, JOIN.LEFT_OUTER,
                   on=(PointsEntry.club == PointsClub.id))
        .join_from(PointsEntry, PointsDraw, JOIN.LEFT_OUTER,
                   on=(PointsDraw.entry == PointsEntry.id))
        .join_from(PointsDraw, grant, JOIN.LEFT_OUTER, on=(PointsDraw.grant == grant.id))
        .order_by(PointsEntry.member_id, PointsEntry.id, PointsDraw.id).tuples())


def _grants_with_drawn(db):
    drawn = PointsDraw.alias('drawn')
    return stream(db, PointsEntry.select(
        PointsEntry.member_id, PointsEntry.id, PointsEntry.amount, PointsEntry.remaining,
        fn.SUM(drawn.points))
        .join(drawn, JOIN.LEFT_OUTER, on=(drawn.grant == PointsEntry.id))
        .where(PointsEntry.amount > 0)
        .group_by(PointsEntry.member_id, PointsEntry.id, PointsEntry.amount,
                  PointsEntry.remaining)
        .order_by(PointsEntry.member_id, PointsEntry.id).tuples())


def _check_members(db, problem, progress, progress_every):
    members = _ByMember(stream(db, PointsMember.select(
        PointsMember.member_id, PointsMember.last_hash).order_by(PointsMember.member_id)
        .tuples()))
    entries = _ByMember(_entries_with_draws(db))
    grants = _ByMember(_grants_with_drawn(db))
    balances = _ByMember(stream(db, PointsBalance.select(
        PointsBalance.member_id, PointsBalance.id, PointsBalance.club, PointsBalance.wallet,
        PointsBalance.payer, PointsBalance.balance)
        .order_by(PointsBalance.member_id, PointsBalance.id).tuples()))
    streams = (members, entries, grants, balances)
    counts = {'members': 0, 'entries': 0, 'draws': 0}

    def tick():
        counts['entries'] += 1
        if progress is not None and counts['entries'] % progress_every == 0:
            progress('points entries', counts['entries'])

    while True:
        pending = [stream.next_member() for stream in streams]
        if all(member_id is None for member_id in pending):
            break
        member_id = min(found for found in pending if found is not None)
        member = list(members.take(member_id))
        counts['members'] += len(member)
        held, newest_hash = _check_entries(problem, member_id, entries.take(member_id),
                                           tick, counts)
        _check_grants(problem, member_id, grants.take(member_id))
        _check_balances(problem, member_id, balances.take(member_id), held)
        if not member:
            if newest_hash is not None:
                problem('points hash chain', 'member %d has entries but no points member row'
                        % member_id, member_id=member_id)
        elif member[0][1] != (newest_hash or GENESIS_HASH):
            problem('points hash chain', 'member %d: last hash is not the hash of its newest '
                    'entry (an entry was deleted or added)' % member_id, member_id=member_id)
    return counts['members'], counts['entries'], counts['draws']


def _entries(rows):
    """``(entry columns, [draw columns, ...])`` per entry, from rows of one member."""
    current = None
    for row in rows:
        if current is None or row[1] != current[0][1]:
            if current is not None:
                yield current
            current = (row[:13], [])
        if row[13] is not None:
            current[1].append(row[13:])
    if current is not None:
        yield current


def _check_entries(problem, member_id, rows, tick, counts):
    """Chain, draws and balance after of one member's entries, in id order.
    Returns the points held per ``(club, wallet, payer)`` and the newest hash."""
    held = {}
    # Per (club, wallet): the entries' running sum, the stored balance after
    # the previous entry, and whether a grant with an expiry date was seen.
    wallets = {}
    chain = GENESIS_HASH
    newest_hash = None
    for entry, draws in _entries(rows):
        (_, entry_id, club_id, slug, wallet, payer, event_type, amount, event_at, expires_on,
         balance_after, transaction_id, stored_hash) = entry
        tick()
        counts['draws'] += len(draws)
        ids = {'member_id': member_id, 'entry_id': entry_id}
        _check_draws(problem, member_id, entry, draws)

        key = (club_id, wallet, payer)
        held[key] = held.get(key, 0) + amount
        running, previous_after, expiring = wallets.get((club_id, wallet), (0, 0, False))
        running += amount
        expiring = expiring or expires_on is not None
        if balance_after is None or balance_after < 0:
            problem('points balance after', 'member %d entry %d: balance after is %s'
                    % (member_id, entry_id, balance_after), **ids)
        elif (not expiring and balance_after != previous_after + amount
              and balance_after != running):
            # One edited amount or balance after is one problem, not one
            # for every later entry of the wallet.
            problem('points balance after', 'member %d entry %d: balance after is %d, the '
                    "wallet's entries sum to %d" % (member_id, entry_id, balance_after, running),
                    **ids)
        wallets[(club_id, wallet)] = (
            running, balance_after if balance_after is not None else running, expiring)

        expected = None
        if (slug is not None and isinstance(event_at, datetime.datetime)
                and (expires_on is None or isinstance(expires_on, datetime.date))):
            expected = entry_hash(
                chain, entry_id=entry_id, member_id=member_id, club=slug, wallet=wallet,
                payer=payer, event_type=event_type, amount=amount, event_at=event_at,
                expires_on=expires_on, balance_after=balance_after,
                transaction_id=transaction_id,
                draws=[(grant_id, points) for _, grant_id, points, *_ in draws])
        if expected != stored_hash:
            problem('points hash chain', 'member %d entry %d: hash does not match its content, '
                    'its draws or its predecessor' % (member_id, entry_id), **ids)
        chain = newest_hash = stored_hash
    return held, newest_hash


def _check_draws(problem, member_id, entry, draws):
    (_, entry_id, club_id, _, wallet, payer, event_type, amount, *_) = entry
    ids = {'member_id': member_id, 'entry_id': entry_id}
    if amount > 0:
        for draw_id, *_ in draws:
            problem('points draw', 'member %d entry %d is a grant, yet draw %d takes points '
                    'for it' % (member_id, entry_id, draw_id), draw_id=draw_id, **ids)
        return
    drawn = sum(points for _, _, points, *_ in draws)
    if drawn != -amount:
        problem('points draws', 'member %d entry %d (%s of %d): its draws sum to %d'
                % (member_id, entry_id, event_type, amount, drawn), **ids)
    for (draw_id, grant_id, points, found_id, grant_member, grant_club, grant_wallet,
         grant_payer, grant_amount) in draws:
        where = 'member %d entry %d draw %d from entry %d' % (member_id, entry_id, draw_id,
                                                             grant_id)
        reason = None
        if found_id is None:
            reason = 'which does not exist'
        elif grant_amount <= 0:
            reason = 'which is not a grant'
        elif grant_member != member_id:
            reason = "a grant of member %d" % grant_member
        elif (grant_club, grant_wallet) != (club_id, wallet):
            reason = 'a grant of another club or wallet'
        elif grant_payer != payer:
            reason = 'a grant of payer %r, not the entry\'s %r' % (grant_payer, payer)
        elif grant_id > entry_id:
            reason = 'a grant written after the entry'
        if reason is not None:
            problem('points draw', '%s: %s' % (where, reason), draw_id=draw_id, **ids)


def _check_grants(problem, member_id, rows):
    for _, grant_id, amount, remaining, drawn in rows:
        drawn = int(drawn or 0)
        ids = {'member_id': member_id, 'entry_id': grant_id}
        if remaining is None or remaining != amount - drawn:
            problem('points remaining', 'member %d grant %d of %d: remaining is %s, %d drawn '
                    'from it' % (member_id, grant_id, amount, remaining, drawn), **ids)
        elif not 0 <= remaining <= amount:
            problem('points remaining', 'member %d grant %d of %d: remaining %d is outside 0 '
                    'to its amount' % (member_id, grant_id, amount, remaining), **ids)


def _check_balances(problem, member_id, rows, held):
    held = dict(held)
    for _, balance_id, club_id, wallet, payer, balance in rows:
        total = held.pop((club_id, wallet, payer), 0)
        slot = 'member %d club %d wallet %r payer %r' % (member_id, club_id, wallet, payer)
        if balance != total:
            problem('points balance', '%s: stored balance %d, its entries sum to %d'
                    % (slot, balance, total), member_id=member_id)
        if balance < 0:
            problem('points negative balance', '%s: %d' % (slot, balance), member_id=member_id)
    for (club_id, wallet, payer), total in held.items():
        problem('points balance', 'member %d club %d wallet %r payer %r: no balance row, its '
                'entries sum to %d' % (member_id, club_id, wallet, payer, total),
                member_id=member_id)


def _check_orphan_draws(db, problem):
    orphans = (PointsDraw.select(PointsDraw.id, PointsDraw.entry)
               .join(PointsEntry, JOIN.LEFT_OUTER, on=(PointsDraw.entry == PointsEntry.id))
               .where(PointsEntry.id.is_null()).order_by(PointsDraw.id).tuples())
    for draw_id, entry_id in stream(db, orphans):
        problem('points draw', 'draw %d belongs to entry %d, which does not exist'
                % (draw_id, entry_id), entry_id=entry_id, draw_id=draw_id)
