"""Points for scenarios 7-9, bulk-loaded into the run database with COPY.

The money seed holds no points, so before the points scenarios the run
database (a fresh copy of the seed) is migrated to the current schema and
given, straight through ``COPY ... FROM STDIN``:

* the spend members 1..M (M = ``SPEND_MEMBERS``, fewer on a seed too small
  to keep the reserved users apart): one grant of ``BIG_GRANT`` points from
  each of the four ``PAYERS``, so the spends of scenario 7 never run dry;
* the deep member (the last seeded user): ``DEPTH_GRANTS`` grants, the
  oldest ones of 1 to 1,000 points, then one spend across the payers that
  draws every grant but the newest ``DEPTH_UNSPENT`` (one entry per payer
  and one draw per grant drawn); the newest grants are ``BIG_GRANT`` each;
* the shallow member (the user before it): ``DEPTH_UNSPENT`` grants of
  ``BIG_GRANT``, none spent.

Every row is what the service itself would have written: event times in
the seeded span, oldest first, balances after each entry, grant remainders,
draws in the order taken, the balance rows per payer and each member's
SHA-256 chain computed by ``balance_api.points.chain.entry_hash``, the
function ``python -m balance_api verify`` recomputes; ``verify`` below runs
its points half (``verify_points``) on the loaded database, about 8 s.

The overspend check of scenario 9 needs no seed: it creates its own users
after the hot account, through the API.
"""
import datetime
import io
import os
import random
import subprocess
import sys
import time
from typing import NamedTuple

from balance_api.points.chain import GENESIS_HASH, entry_hash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAYERS = ('DANNON', 'UNILEVER', 'MILLER COORS', 'KRAFT')
SPEND_MEMBERS = 1000
BIG_GRANT = 10 ** 12                # points per big grant (the API's limit is 10^15 - 1)
DEPTH_GRANTS = 100_000
DEPTH_UNSPENT = 100
SMALL_GRANT_MAX = 1000
# The deep and the shallow member sit at the top of the seeded users.
RESERVED_USERS = 2

CLUB = 'default'
WALLET = 'default'
COPY_BUFFER = 1 << 18

ENTRY_COLUMNS = ('id', 'member_id', 'club_id', 'wallet', 'payer', 'event_type', 'amount',
                 'event_at', 'remaining', 'balance_after', 'created_at', 'hash')
DRAW_COLUMNS = ('id', 'entry_id', 'grant_id', 'points')
BALANCE_COLUMNS = ('id', 'member_id', 'club_id', 'wallet', 'payer', 'balance')
MEMBER_COLUMNS = ('member_id', 'last_hash', 'created_at')


class PointsSpec(NamedTuple):
    """Who holds which points, for a money seed of ``accounts`` users."""
    accounts: int
    rng_seed: int = 7

    @property
    def spend_members(self):
        return max(1, min(SPEND_MEMBERS, self.accounts - RESERVED_USERS))

    @property
    def deep_member(self):
        return self.accounts

    @property
    def shallow_member(self):
        return self.accounts - 1

    def overspend_member(self, repeat):
        """A new user per run of the overspend check, after the hot account."""
        return self.accounts + 2 + repeat

    def check(self):
        if self.accounts < RESERVED_USERS + 1:
            raise ValueError('the points scenarios need a seed of at least %d accounts'
                             % (RESERVED_USERS + 1))


class _Member:
    def __init__(self, member_id, created_at):
        self.member_id = member_id
        self.created_at = created_at
        self.last_hash = GENESIS_HASH
        self.balances = {}           # payer -> points, in the order first granted
        self.unspent = []            # grant rows (lists), oldest first
        self.next_unspent = 0


class _Loader:
    """Builds the rows in entry-id order, as ``points_post`` would write them."""

    def __init__(self, club_id, first_entry_id, first_draw_id, first_balance_id):
        self.club_id = club_id
        self.entry_id = first_entry_id - 1
        self.draw_id = first_draw_id - 1
        self.first_balance_id = first_balance_id
        self.members = {}
        self.entries = []            # rows; a grant's remaining is settled at the end
        self.draws = io.StringIO()
        self.draw_count = 0

    def member(self, member_id, moment):
        if member_id not in self.members:
            self.members[member_id] = _Member(member_id, moment)
        return self.members[member_id]

    def _entry(self, member, payer, event_type, amount, moment, remaining, draws):
        self.entry_id += 1
        spendable = sum(member.balances.values())
        digest = entry_hash(
            member.last_hash, entry_id=self.entry_id, member_id=member.member_id, club=CLUB,
            wallet=WALLET, payer=payer, event_type=event_type, amount=amount, event_at=moment,
            expires_on=None, balance_after=spendable, transaction_id=None, draws=draws)
        member.last_hash = digest
        row = [self.entry_id, member.member_id, payer, event_type, amount, moment, remaining,
               spendable, digest]
        self.entries.append(row)
        return row

    def grant(self, member_id, payer, points, moment):
        member = self.member(member_id, moment)
        member.balances[payer] = member.balances.get(payer, 0) + points
        row = self._entry(member, payer, 'issue', points, moment, points, [])
        member.unspent.append(row)

    def spend(self, member_id, points, moment):
        """Oldest grants first, across payers; one entry per payer, payers in
        the order first drawn (the FIFO policy of the default club)."""
        member = self.members[member_id]
        if sum(member.balances.values()) < points:
            raise ValueError('member %d cannot spend %d points' % (member_id, points))
        by_payer = {}
        wanted = points
        while wanted:
            row = member.unspent[member.next_unspent]
            taken = min(wanted, row[6])
            row[6] -= taken
            if not row[6]:
                member.next_unspent += 1
            by_payer.setdefault(row[2], []).append((row[0], taken))
            wanted -= taken
        for payer, draws in by_payer.items():
            total = sum(taken for _, taken in draws)
            member.balances[payer] -= total
            entry = self._entry(member, payer, 'use', -total, moment, None, draws)
            for grant_id, taken in draws:
                self.draw_id += 1
                self.draws.write('%d\t%d\t%d\t%d\n' % (self.draw_id, entry[0], grant_id, taken))
                self.draw_count += 1

    def entries_text(self):
        out = io.StringIO()
        write = out.write
        club = self.club_id
        for (entry_id, member_id, payer, event_type, amount, moment, remaining, after,
             digest) in self.entries:
            stamp = moment.isoformat(sep=' ')
            write('%d\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n' % (
                entry_id, member_id, club, WALLET, payer, event_type, amount, stamp,
                '\\N' if remaining is None else remaining, after, stamp, digest))
        return out.getvalue()

    def balances_text(self):
        out = io.StringIO()
        balance_id = self.first_balance_id - 1
        for member_id in sorted(self.members):
            for payer, points in self.members[member_id].balances.items():
                balance_id += 1
                out.write('%d\t%d\t%d\t%s\t%s\t%d\n' % (balance_id, member_id, self.club_id,
                                                        WALLET, payer, points))
        return out.getvalue()

    def members_text(self):
        out = io.StringIO()
        for member_id in sorted(self.members):
            member = self.members[member_id]
            out.write('%d\t%s\t%s\n' % (member_id, member.last_hash,
                                        member.created_at.isoformat(sep=' ')))
        return out.getvalue()


def _copy(cursor, table, columns, text):
    cursor.copy_expert('COPY %s (%s) FROM STDIN' % (table, ', '.join(columns)),
                       io.StringIO(text), size=COPY_BUFFER)


def _next_id(cursor, table):
    cursor.execute('SELECT coalesce(max(id), 0) + 1 FROM ' + table)
    return cursor.fetchone()[0]


def migrate(pg, database, python=sys.executable, log=None):
    """Bring a copy of an older seed to the service's current schema."""
    subprocess.run([python, '-m', 'balance_api', 'migrate'], check=True, cwd=ROOT,
                   env={**pg.client_env(), 'DATABASE_URL': pg.database_url(database)},
                   stdout=log, stderr=log)


def load(pg, database, spec, start, python=sys.executable, log=None):
    """Write the points of ``spec`` into ``database`` (a run database); returns facts.

    ``start`` is the first moment of the seeded span: the points' event
    times follow it, one second apart.
    """
    spec.check()
    started = time.perf_counter()
    migrate(pg, database, python, log)
    conn = pg.connect(database, autocommit=False)
    cursor = conn.cursor()
    cursor.execute("SET session_replication_role = replica")   # no per-row FK triggers
    cursor.execute('SELECT id FROM points_club WHERE slug = %s', (CLUB,))
    club_id = cursor.fetchone()[0]
    cursor.execute('SELECT count(*) FROM points_member WHERE member_id <= %s',
                   (spec.accounts,))
    if cursor.fetchone()[0]:
        raise RuntimeError('the run database already holds points for the seeded users')
    loader = _Loader(club_id, _next_id(cursor, 'points_entry'), _next_id(cursor, 'points_draw'),
                     _next_id(cursor, 'points_balance'))
    rng = random.Random(spec.rng_seed)
    moment = start
    second = datetime.timedelta(seconds=1)

    for member_id in range(1, spec.spend_members + 1):
        for payer in PAYERS:
            loader.grant(member_id, payer, BIG_GRANT, moment)
            moment += second

    deep = spec.deep_member
    spent_grants = DEPTH_GRANTS - DEPTH_UNSPENT
    spent_points = 0
    for index in range(DEPTH_GRANTS):
        payer = PAYERS[index % len(PAYERS)]
        if index < spent_grants:
            points = rng.randrange(1, SMALL_GRANT_MAX + 1)
            spent_points += points
        else:
            points = BIG_GRANT
        loader.grant(deep, payer, points, moment)
        moment += second
    loader.spend(deep, spent_points, moment)
    moment += second

    for index in range(DEPTH_UNSPENT):
        loader.grant(spec.shallow_member, PAYERS[index % len(PAYERS)], BIG_GRANT, moment)
        moment += second
    generated = time.perf_counter() - started

    _copy(cursor, 'points_member', MEMBER_COLUMNS, loader.members_text())
    _copy(cursor, 'points_balance', BALANCE_COLUMNS, loader.balances_text())
    _copy(cursor, 'points_entry', ENTRY_COLUMNS, loader.entries_text())
    _copy(cursor, 'points_draw', DRAW_COLUMNS, loader.draws.getvalue())
    for table in ('points_entry', 'points_draw', 'points_balance'):
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM "
                       + table + '))', (table,))
    conn.commit()
    conn.autocommit = True
    cursor.execute('VACUUM (ANALYZE) points_member, points_balance, points_entry, points_draw')
    cursor.close()
    conn.close()
    return {
        'seconds': round(time.perf_counter() - started, 1),
        'generate_seconds': round(generated, 1),
        'spend_members': spec.spend_members,
        'deep_member': deep,
        'shallow_member': spec.shallow_member,
        'members': len(loader.members),
        'entries': len(loader.entries),
        'draws': loader.draw_count,
        'deep_spent_grants': spent_grants,
        'deep_unspent_grants': DEPTH_UNSPENT,
    }


def verify(pg, database):
    """``verify_points`` (the points half of ``python -m balance_api verify``) on a
    database; returns (ok, summary)."""
    from balance_api.points.verify import verify_points
    from balance_api.storage.db import database as proxy, open_database

    db = open_database(pg.database_url(database), pool_size=1)
    proxy.initialize(db)
    try:
        with db.connection_context():
            report = verify_points(db, max_problems=20)
    finally:
        db.close_all()
    summary = 'points members: %d, points entries: %d, points draws: %d' % (
        report.members, report.entries, report.draws)
    if not report.ok:
        summary += '; %d problem(s): %s' % (
            len(report.problems) + report.unlisted,
            '; '.join('%s: %s' % (p.kind, p.detail) for p in report.problems[:5]))
    return report.ok, summary
