"""Random grants, corrections, spends and expiries through the points engine,
checked against a plain Python model after every step.

Grants come from several payers into two wallets, with random event times
posted in random order and sometimes an expiry date; the engine's clock
moves forward between steps, and the sweep runs now and then. After every
step the spendable points by payer, every spend's breakdown and every
refusal must equal the model's, and no balance may be negative; at the end
of each example the points ledger verifies.
"""
import datetime
from typing import List, NamedTuple, Optional

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, \
    run_state_machine_as_test

from balance_api.points import errors
from balance_api.points.ledger import POLICIES, PointsLedger
from balance_api.points.models import PointsBalance
from balance_api.points.verify import verify_points
from balance_api.storage.db import database, is_postgres, open_database

SETTINGS = settings(max_examples=15, stateful_step_count=25, deadline=None, derandomize=True,
                    database=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])

MEMBER = 1
WALLETS = ['default', 'travel']
PAYERS = ['A', 'B', 'C']
START = datetime.datetime(2024, 3, 1, 12, 0)
POINTS_TABLES = ('points_draw', 'points_transaction', 'points_entry', 'points_balance',
                 'points_member')


GRANT_FIELDS = {
    'wallet': st.sampled_from(WALLETS), 'payer': st.sampled_from(PAYERS),
    'points': st.integers(1, 100),
    # Hours from now: mostly in the past, in any order.
    'hours': st.integers(-30 * 24, 24),
    # Days from today; a past expiry date is a grant that never counts.
    'expires_in': st.one_of(st.none(), st.none(), st.integers(-3, 20)),
}
GRANTS = st.fixed_dictionaries(GRANT_FIELDS)


class Grant(NamedTuple):
    number: int  # arrival order: the engine's tie-break on equal times
    wallet: str
    payer: str
    event_at: datetime.datetime
    expires_on: Optional[datetime.date]


class Model:
    """Grants and what is left of them; nothing else."""

    def __init__(self, policy):
        self.policy = policy
        self.grants: List[Grant] = []
        self.remaining = {}
        self.today = START.date()

    def live(self, grant):
        return grant.expires_on is None or grant.expires_on >= self.today

    def grant(self, wallet, payer, points, event_at, expires_on):
        grant = Grant(len(self.grants), wallet, payer, event_at, expires_on)
        self.grants.append(grant)
        self.remaining[grant] = points

    def spendable(self, wallet):
        """``{payer: points}`` for every payer the wallet ever had."""
        held = {}
        for grant in self.grants:
            if grant.wallet == wallet:
                held[grant.payer] = held.get(grant.payer, 0) + (
                    self.remaining[grant] if self.live(grant) else 0)
        return held

    def _order(self, grant):
        if self.policy == 'expiring-first':
            return (grant.expires_on is None, grant.expires_on or datetime.date.min,
                    grant.event_at, grant.number)
        return (grant.event_at, grant.number)

    def take(self, wallet, points, payer=None):
        """``[(payer, -points)]`` by payer in the order first drawn, or the refusal."""
        spendable = self.spendable(wallet)
        if payer is not None:
            if payer not in spendable:
                return errors.UnknownPayer
            if spendable[payer] < points:
                return errors.NotEnoughPayerPoints
        elif sum(spendable.values()) < points:
            return errors.NotEnoughPoints
        drawable = sorted((grant for grant in self.grants
                           if grant.wallet == wallet and self.live(grant)
                           and self.remaining[grant] and payer in (None, grant.payer)),
                          key=self._order)
        taken = {}
        for grant in drawable:
            if not points:
                break
            drawn = min(points, self.remaining[grant])
            self.remaining[grant] -= drawn
            taken[grant.payer] = taken.get(grant.payer, 0) + drawn
            points -= drawn
        return [(name, -drawn) for name, drawn in taken.items()]

    def expire(self):
        due = [grant for grant in self.grants if not self.live(grant) and self.remaining[grant]]
        for grant in due:
            self.remaining[grant] = 0
        return len(due)


def expect_equal(found, expected, what):
    # An explicit raise: the failure must reach hypothesis however asserts are handled.
    if found != expected:
        raise AssertionError('%s: the engine has %r, the model %r' % (what, found, expected))


def _reset(db):
    with db.connection_context():
        if is_postgres(db):
            db.execute_sql('TRUNCATE %s RESTART IDENTITY' % ', '.join(POINTS_TABLES))
        else:
            with db.atomic():
                for table in POINTS_TABLES:
                    db.execute_sql('DELETE FROM %s' % table)


class PointsMachine(RuleBasedStateMachine):
    db = None

    def __init__(self):
        super().__init__()
        _reset(self.db)
        self.now = START
        self.ledger = PointsLedger(self.db, clock=lambda: self.now)
        self.model = None

    @initialize(policy=st.sampled_from(POLICIES), grants=st.lists(GRANTS, min_size=3,
                                                                  max_size=8))
    def open_wallets(self, policy, grants):
        """Start with a policy and a few grants, so most spends have something to draw."""
        with self.db.connection_context():
            self.ledger.set_policy('default', policy)
        self.model = Model(policy)
        for grant in grants:
            self.grant(**grant)

    def _take(self, wallet, points, payer=None):
        expected = self.model.take(wallet, points, payer)
        with self.db.connection_context():
            try:
                if payer is None:
                    answer = self.ledger.spend(MEMBER, points, wallet=wallet)
                else:
                    answer = [(entry.payer, entry.points) for entry in self.ledger.post(
                        MEMBER, -points, event_type='revoke', event_at=self.now,
                        wallet=wallet, payer=payer)]
            except (errors.NotEnoughPoints, errors.NotEnoughPayerPoints,
                    errors.UnknownPayer) as refusal:
                answer = type(refusal)
        expect_equal(answer, expected, '%s of %d from %s' % (payer or 'spend', points, wallet))

    @rule(**GRANT_FIELDS)
    def grant(self, wallet, payer, points, hours, expires_in):
        # Whole hours, so equal times (ordered by arrival) happen.
        event_at = self.now.replace(minute=0) + datetime.timedelta(hours=hours)
        expires_on = (None if expires_in is None
                      else self.model.today + datetime.timedelta(days=expires_in))
        with self.db.connection_context():
            written = self.ledger.post(MEMBER, points, event_type='issue', event_at=event_at,
                                       wallet=wallet, payer=payer, expires_on=expires_on)
        expect_equal([(entry.payer, entry.points) for entry in written], [(payer, points)],
                     'grant')
        self.model.grant(wallet, payer, points, event_at, expires_on)

    @rule(wallet=st.sampled_from(WALLETS), payer=st.sampled_from(PAYERS),
          points=st.integers(1, 40))
    def correct(self, wallet, payer, points):
        self._take(wallet, points, payer)

    @rule(wallet=st.sampled_from(WALLETS), points=st.integers(1, 90))
    def spend(self, wallet, points):
        self._take(wallet, points)

    @rule(days=st.integers(0, 6))
    def time_passes(self, days):
        self.now += datetime.timedelta(days=days, minutes=7)
        self.model.today = self.now.date()

    @rule()
    def sweep(self):
        with self.db.connection_context():
            written = self.ledger.expire_due()
        expect_equal(written, self.model.expire(), 'expire entries written')

    @invariant()
    def balances_match(self):
        if self.model is None:
            return
        with self.db.connection_context():
            for wallet in WALLETS:
                expect_equal(self.ledger.payer_balances(MEMBER, wallet=wallet),
                             self.model.spendable(wallet), 'points by payer in %s' % wallet)
            wallets = self.ledger.wallet_balances(MEMBER, 'default')
            stored = list(PointsBalance.select(PointsBalance.balance).tuples())
        expected = {wallet: sum(self.model.spendable(wallet).values()) for wallet in WALLETS
                    if any(grant.wallet == wallet for grant in self.model.grants)}
        expect_equal(wallets, expected, 'points by wallet')
        expect_equal([points for points in wallets.values() if points < 0], [],
                     'negative wallets')
        expect_equal([balance for balance, in stored if balance < 0], [], 'negative balances')

    def teardown(self):
        with self.db.connection_context():
            report = verify_points(self.db)
        expect_equal(report.problems, [], 'verify')


def test_engine_matches_model(database_url, make_user):
    make_user(MEMBER)
    db = open_database(database_url)
    database.initialize(db)
    machine = type('PointsMachine', (PointsMachine,), {'db': db})
    try:
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        if is_postgres(db):
            db.close_all()
