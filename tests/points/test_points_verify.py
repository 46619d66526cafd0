"""The points verifier names every kind of tampering it can see, with the
exact member, entry and draw, on a ledger written by the engine."""
import datetime
import subprocess
import sys

import pytest

from balance_api.points.chain import entry_hash
from balance_api.points.ledger import PointsLedger
from balance_api.points.models import PointsClub, PointsDraw, PointsEntry
from balance_api.points.verify import verify_points
from balance_api.storage.db import database, is_postgres, open_database
from conftest import ROOT

TODAY = datetime.datetime(2024, 3, 1, 12, 0)


def day(month, number):
    return datetime.datetime(2024, month, number, 9, 0)


@pytest.fixture
def open_raw(database_url):
    """A database handle the models are bound to, for writing and tampering."""
    handles = []

    def open_handle():
        db = open_database(database_url)
        database.initialize(db)
        db.connect()
        handles.append(db)
        return db
    yield open_handle
    for db in handles:
        db.close()


@pytest.fixture
def points(make_user, open_raw):
    """A points ledger written by the engine.

    Entries of member 1, default wallet: 1 grant A 100, 2 grant B 50,
    3 correction A -30 (draw 1: 30 from 1), 4 and 5 a spend of 90 (draw 2:
    70 from 1 as A; draw 3: 20 from 2 as B). Wallet travel: 6 grant A 40
    expiring 2024-03-10, 7 grant C 25 expiring 2024-02-15, 8 its expiry
    (draw 4: 25 from 7). Member 2: 9 grant A 10. Today is 2024-03-01.
    """
    make_user(1)
    make_user(2)
    db = open_raw()
    ledger = PointsLedger(db, clock=lambda: TODAY)
    ledger.post(1, 100, event_type='issue', event_at=day(1, 1), payer='A')
    ledger.post(1, 50, event_type='issue', event_at=day(1, 2), payer='B')
    ledger.post(1, -30, event_type='revoke', event_at=day(1, 3), payer='A')
    assert ledger.spend(1, 90) == [('A', -70), ('B', -20)]
    ledger.post(1, 40, event_type='issue', event_at=day(2, 1), payer='A', wallet='travel',
                expires_on=datetime.date(2024, 3, 10))
    ledger.post(1, 25, event_type='issue', event_at=day(2, 2), payer='C', wallet='travel',
                expires_on=datetime.date(2024, 2, 15))
    assert ledger.expire_due() == 1
    ledger.post(2, 10, event_type='issue', event_at=day(1, 5), payer='A')
    return db


def _tamper(db, *statements, unchecked_table=None):
    """Run ``statements`` past foreign keys (and ``unchecked_table``'s CHECK
    constraints, put back as NOT VALID on PostgreSQL), as a raw edit of the
    data could."""
    if not is_postgres(db):
        db.execute_sql('PRAGMA foreign_keys = OFF')
        db.execute_sql('PRAGMA ignore_check_constraints = ON')
        try:
            with db.atomic():
                for statement in statements:
                    db.execute_sql(statement)
        finally:
            db.execute_sql('PRAGMA ignore_check_constraints = OFF')
            db.execute_sql('PRAGMA foreign_keys = ON')
        return
    checks = []
    if unchecked_table is not None:
        checks = db.execute_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = '%s'::regclass AND contype = 'c'" % unchecked_table).fetchall()
    with db.atomic():
        db.execute_sql("SET LOCAL session_replication_role = 'replica'")
        for name, _ in checks:
            db.execute_sql('ALTER TABLE %s DROP CONSTRAINT %s' % (unchecked_table, name))
        for statement in statements:
            db.execute_sql(statement)
        for name, definition in checks:
            db.execute_sql('ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID'
                           % (unchecked_table, name, definition))


def _found(db):
    return [(p.kind, p.member_id, p.entry_id, p.draw_id) for p in verify_points(db).problems]


def _details(db):
    return [p.detail for p in verify_points(db).problems]


def _rehash(db, entry_id):
    """Recompute one entry's hash from its row as it now is, chained to the
    stored hash of the member's entry before it."""
    entry = PointsEntry.get_by_id(entry_id)
    previous = (PointsEntry.select(PointsEntry.hash)
                .where((PointsEntry.member_id == entry.member_id) & (PointsEntry.id < entry_id))
                .order_by(PointsEntry.id.desc()).scalar())
    draws = [(draw.grant_id, draw.points) for draw in entry.draws.order_by(PointsDraw.id)]
    digest = entry_hash(
        previous, entry_id=entry.id, member_id=entry.member_id,
        club=PointsClub.get_by_id(entry.club_id).slug, wallet=entry.wallet, payer=entry.payer,
        event_type=entry.event_type, amount=entry.amount, event_at=entry.event_at,
        expires_on=entry.expires_on, balance_after=entry.balance_after,
        transaction_id=entry.transaction_id, draws=draws)
    _tamper(db, "UPDATE points_entry SET hash = '%s' WHERE id = %d" % (digest, entry_id))
    return digest


# -- an intact ledger -------------------------------------------------------------

def test_intact_ledger_verifies(points):
    report = verify_points(points)
    assert (report.problems, report.unlisted, report.ok) == ([], 0, True)
    assert (report.members, report.entries, report.draws) == (2, 9, 4)


def test_a_new_ledger_verifies_and_is_empty(open_raw):
    report = verify_points(open_raw())
    assert report.ok and report.empty
    assert (report.members, report.entries, report.draws) == (0, 0, 0)


def test_progress_is_reported_every_so_many_entries(points):
    calls = []
    assert verify_points(points, progress=lambda kind, count: calls.append((kind, count)),
                         progress_every=4).ok
    assert calls == [('points entries', 4), ('points entries', 8)]
    with pytest.raises(ValueError, match='^progress_every must be positive$'):
        verify_points(points, progress_every=0)


# -- amounts, remainders, balances ------------------------------------------------

def test_edited_amount_is_found(points):
    _tamper(points, 'UPDATE points_entry SET amount = 150 WHERE id = 1')
    assert _found(points) == [
        ('points balance after', 1, 1, None),
        ('points hash chain', 1, 1, None),
        ('points remaining', 1, 1, None),
        ('points balance', 1, None, None),
    ]
    club = PointsClub.get(PointsClub.slug == 'default').id
    assert _details(points) == [
        "member 1 entry 1: balance after is 100, the wallet's entries sum to 150",
        'member 1 entry 1: hash does not match its content, its draws or its predecessor',
        'member 1 grant 1 of 150: remaining is 0, 100 drawn from it',
        "member 1 club %d wallet 'default' payer 'A': stored balance 0, its entries sum to 50"
        % club,
    ]


def test_edited_remaining_is_found(points):
    # The chain does not cover a grant's remainder: only its draws tell.
    _tamper(points, 'UPDATE points_entry SET remaining = 40 WHERE id = 2')
    assert _found(points) == [('points remaining', 1, 2, None)]
    assert _details(points) == ['member 1 grant 2 of 50: remaining is 40, 20 drawn from it']


def test_remaining_below_zero_is_found_even_when_the_draws_agree(points):
    # Grant 2 overdrawn by a second draw of entry 5, its remainder set to match.
    _tamper(points, 'UPDATE points_entry SET remaining = -10 WHERE id = 2',
            'INSERT INTO points_draw (id, entry_id, grant_id, points) VALUES (99, 5, 2, 40)',
            unchecked_table='points_entry')
    assert _found(points) == [
        ('points draws', 1, 5, None),
        ('points hash chain', 1, 5, None),
        ('points remaining', 1, 2, None),
    ]
    assert _details(points)[-1] == ('member 1 grant 2 of 50: remaining -10 is outside 0 to '
                                    'its amount')


def test_edited_balance_row_is_found(points):
    _tamper(points, "UPDATE points_balance SET balance = 31 WHERE member_id = 1 AND payer = 'B'")
    assert _found(points) == [('points balance', 1, None, None)]
    assert _details(points)[0].endswith("wallet 'default' payer 'B': stored balance 31, "
                                        "its entries sum to 30")


def test_negative_balance_row_is_found(points):
    _tamper(points, "UPDATE points_balance SET balance = -1 WHERE member_id = 2",
            unchecked_table='points_balance')
    assert _found(points) == [('points balance', 2, None, None),
                              ('points negative balance', 2, None, None)]


def test_missing_balance_row_is_found(points):
    _tamper(points, 'DELETE FROM points_balance WHERE member_id = 2')
    assert _found(points) == [('points balance', 2, None, None)]
    assert _details(points)[0].endswith("payer 'A': no balance row, its entries sum to 10")


# -- draws ------------------------------------------------------------------------

def test_draw_moved_to_another_payers_grant_is_found(points):
    _tamper(points, 'UPDATE points_draw SET grant_id = 1 WHERE id = 3')
    assert _found(points) == [
        ('points draw', 1, 5, 3),
        ('points hash chain', 1, 5, None),
        ('points remaining', 1, 1, None),
        ('points remaining', 1, 2, None),
    ]
    assert _details(points)[0] == ("member 1 entry 5 draw 3 from entry 1: a grant of payer "
                                   "'A', not the entry's 'B'")


@pytest.mark.parametrize('grant, reason', [
    (6, 'a grant of another club or wallet'),
    (9, 'a grant of member 2'),
    (5, 'which is not a grant'),
    (77, 'which does not exist'),
])
def test_draw_moved_to_a_grant_it_may_not_take_from_is_found(points, grant, reason):
    _tamper(points, 'UPDATE points_draw SET grant_id = %d WHERE id = 2' % grant)
    found = _found(points)
    assert found[:2] == [('points draw', 1, 4, 2), ('points hash chain', 1, 4, None)]
    assert _details(points)[0] == 'member 1 entry 4 draw 2 from entry %d: %s' % (grant, reason)


def test_draw_from_a_later_grant_is_found(points):
    # Entry 3 (a correction of A) made to draw on grant 6, also A's but newer.
    _tamper(points, "UPDATE points_entry SET wallet = 'travel' WHERE id = 3",
            'UPDATE points_draw SET grant_id = 6 WHERE id = 1')
    found = _found(points)
    assert ('points draw', 1, 3, 1) in found
    assert ('member 1 entry 3 draw 1 from entry 6: a grant written after the entry'
            in _details(points))


def test_deleted_draw_is_found(points):
    _tamper(points, 'DELETE FROM points_draw WHERE id = 2')
    assert _found(points) == [
        ('points draws', 1, 4, None),
        ('points hash chain', 1, 4, None),
        ('points remaining', 1, 1, None),
    ]
    assert _details(points)[0] == 'member 1 entry 4 (use of -70): its draws sum to 0'


def test_draw_added_to_a_grant_is_found(points):
    _tamper(points, 'INSERT INTO points_draw (entry_id, grant_id, points) VALUES (2, 1, 5)')
    draw = points.execute_sql('SELECT MAX(id) FROM points_draw').fetchone()[0]
    assert _found(points) == [
        ('points draw', 1, 2, draw),
        ('points hash chain', 1, 2, None),
        ('points remaining', 1, 1, None),
    ]


# -- entries and chains -----------------------------------------------------------

def test_deleted_entry_is_found(points):
    _tamper(points, 'DELETE FROM points_entry WHERE id = 3')
    assert _found(points) == [
        ('points balance after', 1, 4, None),
        ('points hash chain', 1, 4, None),
        ('points balance', 1, None, None),
        ('points draw', None, 3, 1),
    ]
    assert _details(points)[-1] == 'draw 1 belongs to entry 3, which does not exist'


def test_deleted_grant_is_found(points):
    _tamper(points, 'DELETE FROM points_entry WHERE id = 9')
    assert _found(points) == [('points balance', 2, None, None),
                              ('points hash chain', 2, None, None)]


def test_chain_rewritten_for_one_entry_is_found_at_the_next(points):
    _tamper(points, "UPDATE points_entry SET event_at = '2023-12-31 09:00:00' WHERE id = 2")
    assert _found(points) == [('points hash chain', 1, 2, None)]
    _rehash(points, 2)
    assert _found(points) == [('points hash chain', 1, 3, None)]


def test_newest_entry_rewritten_with_its_hash_is_found_by_the_member(points):
    _tamper(points, "UPDATE points_entry SET event_at = '2024-02-29 09:00:00' WHERE id = 8")
    _rehash(points, 8)
    assert _found(points) == [('points hash chain', 1, None, None)]


def test_last_hash_not_the_newest_entrys_is_found(points):
    _tamper(points, 'UPDATE points_member SET last_hash = '
                    '(SELECT hash FROM points_entry WHERE id = 7) WHERE member_id = 1')
    assert _found(points) == [('points hash chain', 1, None, None)]
    assert _details(points) == ['member 1: last hash is not the hash of its newest entry '
                                '(an entry was deleted or added)']


def test_entries_without_a_member_row_are_found(points):
    _tamper(points, 'DELETE FROM points_member WHERE member_id = 2')
    assert _found(points) == [('points hash chain', 2, None, None)]


def test_edited_balance_after_is_one_problem(points):
    _tamper(points, 'UPDATE points_entry SET balance_after = 999 WHERE id = 2')
    assert _found(points) == [('points balance after', 1, 2, None),
                              ('points hash chain', 1, 2, None)]


def test_negative_balance_after_in_an_expiring_wallet_is_found(points):
    _tamper(points, 'UPDATE points_entry SET balance_after = -5 WHERE id = 7')
    assert _found(points) == [('points balance after', 1, 7, None),
                              ('points hash chain', 1, 7, None)]


# -- the command ------------------------------------------------------------------

def test_verify_command_reports_points(points, database_url):
    command = [sys.executable, '-m', 'balance_api', 'verify']
    env = {'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'}
    intact = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    # Standard error names the database, and nothing else.
    assert intact.returncode == 0, intact.stderr
    assert intact.stderr.splitlines() == ['balance_api: database ' + database_url], intact.stderr
    assert intact.stdout.splitlines() == [
        'accounts: 3, postings: 2, journal entries: 2',
        'points members: 2, points entries: 9, points draws: 4',
        'ledger OK']
    _tamper(points, 'UPDATE points_entry SET remaining = 40 WHERE id = 2',
            "UPDATE account SET balance = '1.00' WHERE id = 1")
    broken = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        'accounts: 3, postings: 2, journal entries: 2',
        'points members: 2, points entries: 9, points draws: 4',
        'PROBLEM balance: account 1: stored balance 1.00, its postings sum to 0.00',
        'PROBLEM points remaining: member 1 grant 2 of 50: remaining is 40, 20 drawn from it',
        'ledger BROKEN: 2 problem(s)',
    ]
