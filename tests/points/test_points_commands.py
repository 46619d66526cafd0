"""expire-points and club-policy, through the command line and through the
engine, with the engine's clock moved to make "today"."""
import datetime
import subprocess
import sys

import pytest

from balance_api import __main__ as command_line
from balance_api.points import errors
from balance_api.points.ledger import PointsLedger
from balance_api.points.models import PointsClub, PointsDraw, PointsEntry
from balance_api.points.verify import verify_points
from balance_api.storage.db import database, open_database
from conftest import ROOT


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def move_to(self, year, month, day):
        self.now = datetime.datetime(year, month, day, 12, 0)


@pytest.fixture
def db(database_url, make_user):
    make_user(1)
    make_user(2)
    handle = open_database(database_url)
    database.initialize(handle)
    handle.connect()
    yield handle
    handle.close()


@pytest.fixture
def clock():
    return Clock(datetime.datetime(2024, 3, 1, 12, 0))


@pytest.fixture
def ledger(db, clock):
    return PointsLedger(db, clock=clock)


def at(month, day):
    return datetime.datetime(2024, month, day, 9, 0)


def run(database_url, *arguments):
    return subprocess.run([sys.executable, '-m', 'balance_api', *arguments], cwd=ROOT,
                          env={'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'},
                          capture_output=True, text=True)


def expire_entries():
    return list(PointsEntry.select(PointsEntry.member_id, PointsEntry.payer, PointsEntry.amount,
                                   PointsDraw.grant, PointsDraw.points)
                .join(PointsDraw, on=(PointsDraw.entry == PointsEntry.id))
                .where(PointsEntry.event_type == 'expire').order_by(PointsEntry.id).tuples())


# -- expiry through the engine ------------------------------------------------------

def test_an_expired_grant_is_not_spendable_before_the_sweep(ledger, clock):
    ledger.post(1, 50, event_type='issue', event_at=at(1, 1), payer='A',
                expires_on=datetime.date(2024, 3, 10))
    ledger.post(1, 30, event_type='issue', event_at=at(1, 2), payer='B')
    clock.move_to(2024, 3, 10)  # the last day it counts
    assert ledger.payer_balances(1) == {'A': 50, 'B': 30}
    clock.move_to(2024, 3, 11)
    assert ledger.payer_balances(1) == {'A': 0, 'B': 30}
    assert ledger.wallet_balances(1, 'default') == {'default': 30}
    with pytest.raises(errors.NotEnoughPoints):
        ledger.spend(1, 31)
    with pytest.raises(errors.NotEnoughPayerPoints):
        ledger.post(1, -1, event_type='revoke', event_at=at(3, 11), payer='A')
    assert expire_entries() == []
    assert ledger.spend(1, 30) == [('B', -30)]


def test_the_sweep_writes_each_expiry_once_and_changes_no_balance(ledger, clock):
    first = ledger.post(1, 50, event_type='issue', event_at=at(1, 1), payer='A',
                        expires_on=datetime.date(2024, 3, 10))[0]
    second = ledger.post(1, 20, event_type='issue', event_at=at(1, 3), payer='A',
                         expires_on=datetime.date(2024, 4, 30))[0]
    ledger.post(1, 30, event_type='issue', event_at=at(1, 2), payer='B')
    assert ledger.spend(1, 60) == [('A', -50), ('B', -10)]
    # Only what is left of a grant expires: the first is spent out.
    clock.move_to(2024, 5, 1)
    before = ledger.payer_balances(1)
    assert before == {'A': 0, 'B': 20}
    assert ledger.expire_due() == 1
    assert expire_entries() == [(1, 'A', -20, second.id, 20)]
    assert ledger.payer_balances(1) == before
    assert ledger.expire_due() == 0
    assert len(expire_entries()) == 1
    assert PointsEntry.get_by_id(first.id).remaining == 0
    assert verify_points(database.obj).ok


def test_the_sweep_reports_progress_per_member(ledger, clock):
    for member in (1, 2):
        for payer in ('A', 'B'):
            ledger.post(member, 5, event_type='issue', event_at=at(1, 1), payer=payer,
                        expires_on=datetime.date(2024, 3, 5))
    clock.move_to(2024, 3, 6)
    seen = []
    assert ledger.expire_due(progress=seen.append) == 4
    assert seen == [2, 4]


# -- the expiring-first policy -------------------------------------------------------

def _three_grants(ledger, club):
    ledger.post(1, 10, event_type='issue', event_at=at(1, 1), payer='A', club=club)
    ledger.post(1, 10, event_type='issue', event_at=at(1, 2), payer='B', club=club,
                expires_on=datetime.date(2024, 6, 30))
    ledger.post(1, 10, event_type='issue', event_at=at(1, 3), payer='C', club=club,
                expires_on=datetime.date(2024, 3, 31))


def test_expiring_first_spends_the_soonest_expiring_grants_first(ledger):
    ledger.set_policy('shop', 'expiring-first')
    _three_grants(ledger, 'shop')
    _three_grants(ledger, 'default')
    assert ledger.spend(1, 15, club='shop') == [('C', -10), ('B', -5)]
    assert ledger.spend(1, 15, club='default') == [('A', -10), ('B', -5)]
    # Grants without an expiry date come last.
    assert ledger.spend(1, 10, club='shop') == [('B', -5), ('A', -5)]
    assert verify_points(database.obj).ok


# -- the commands ------------------------------------------------------------------

def test_expire_points_command_writes_due_expiries_once(database_url, db):
    # Written in 2020, so today's date is past the expiry.
    ledger = PointsLedger(db, clock=lambda: datetime.datetime(2020, 1, 2, 12, 0))
    grant = ledger.post(1, 100, event_type='issue', event_at=datetime.datetime(2020, 1, 1),
                        payer='A', expires_on=datetime.date(2020, 6, 30))[0]
    ledger.post(1, 20, event_type='issue', event_at=datetime.datetime(2020, 1, 1), payer='B')
    assert ledger.spend(1, 30) == [('A', -30)]

    first = run(database_url, 'expire-points')
    assert (first.returncode, first.stdout, first.stderr) == (
        0, 'wrote 1 expire entries\n', 'balance_api: database %s\n' % database_url)
    assert expire_entries() == [(1, 'A', -70, grant.id, 70)]
    again = run(database_url, 'expire-points')
    assert (again.returncode, again.stdout) == (0, 'wrote 0 expire entries\n')
    assert len(expire_entries()) == 1
    assert PointsLedger(db).payer_balances(1) == {'A': 0, 'B': 20}
    checked = run(database_url, 'verify')
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.splitlines()[-1] == 'ledger OK'


def test_expire_points_shows_progress_on_a_terminal(database_url, db, monkeypatch, capsys):
    ledger = PointsLedger(db, clock=lambda: datetime.datetime(2020, 1, 2, 12, 0))
    ledger.post(1, 100, event_type='issue', event_at=datetime.datetime(2020, 1, 1),
                payer='A', expires_on=datetime.date(2020, 6, 30))
    monkeypatch.setenv('DATABASE_URL', database_url)
    monkeypatch.setattr(sys.stderr, 'isatty', lambda: True)
    assert command_line.main(['expire-points']) == 0
    captured = capsys.readouterr()
    assert captured.out == 'wrote 1 expire entries\n'
    assert captured.err == ('balance_api: database %s\n\rwrote 1 expire entries\r\033[K'
                            % database_url)


def test_club_policy_command_sets_the_policy(database_url, db):
    done = run(database_url, 'club-policy', 'shop', 'expiring-first')
    assert (done.returncode, done.stdout, done.stderr) == (
        0, 'club shop: policy expiring-first\n', 'balance_api: database %s\n' % database_url)
    assert PointsClub.get(PointsClub.slug == 'shop').policy == 'expiring-first'
    back = run(database_url, 'club-policy', 'shop', 'fifo')
    assert back.returncode == 0
    assert PointsClub.get(PointsClub.slug == 'shop').policy == 'fifo'


@pytest.mark.parametrize('arguments, complaint', [
    (['shop', 'lifo'], "argument policy: invalid choice: 'lifo'"),
    (['shop', 'FIFO'], "argument policy: invalid choice: 'FIFO'"),
    ([' shop', 'fifo'], 'argument slug: a club slug is 1 to 64 characters'),
    (['', 'fifo'], 'argument slug: a club slug is 1 to 64 characters'),
    (['x' * 65, 'fifo'], 'argument slug: a club slug is 1 to 64 characters'),
    (['sh\top', 'fifo'], 'argument slug: a club slug is 1 to 64 characters'),
    (['shop'], 'the following arguments are required: policy'),
])
def test_club_policy_command_refuses_bad_input_cleanly(database_url, db, arguments,
                                                       complaint):
    refused = run(database_url, 'club-policy', *arguments)
    assert refused.returncode == 2
    assert refused.stdout == ''
    assert complaint in refused.stderr
    assert 'Traceback' not in refused.stderr
    assert not PointsClub.select().where(PointsClub.slug != 'default').exists()
