"""The verifier finds every kind of tampering, on a copy of real ledger data."""
import subprocess
import sys

import pytest

from balance_api.db import database, open_database
from balance_api.verify import verify_ledger
from conftest import FORM, ROOT


@pytest.fixture
def ledger(client, make_user, database_url):
    """A small ledger written through the API, and a raw database handle on it."""
    make_user(1, '100.00')
    make_user(2, '50.00')
    make_user(3)
    for body in ('sender_id=1&receiver_id=2&balance=10.01',
                 'sender_id=2&receiver_id=3&balance=5',
                 'sender_id=1&receiver_id=3&balance=0.99'):
        assert client.simulate_put('/transfer', headers=FORM, body=body).status_code == 200
    assert client.simulate_put('/balance/3', headers=FORM,
                               body='operation=sub&balance=1').status_code == 200
    db = open_database(database_url)
    database.initialize(db)
    db.connect()
    yield db
    db.close()


def _tamper(db, *statements):
    # Let the tampering break foreign keys, as a raw edit of the files could.
    sqlite = db.__class__.__name__.startswith('Sqlite')
    if sqlite:
        db.execute_sql('PRAGMA foreign_keys = OFF')
    with db.atomic():
        if not sqlite:
            db.execute_sql("SET LOCAL session_replication_role = 'replica'")
        for statement in statements:
            db.execute_sql(statement)
    if sqlite:
        db.execute_sql('PRAGMA foreign_keys = ON')


def _kinds(db):
    report = verify_ledger(db)
    return {problem.kind for problem in report.problems}, report


def _posting(db, account_id, nth=1):
    return db.execute_sql('SELECT id FROM posting WHERE account_id = %d ORDER BY id '
                          'LIMIT 1 OFFSET %d' % (account_id, nth)).fetchone()[0]


def test_intact_ledger_verifies(ledger):
    kinds, report = _kinds(ledger)
    assert report.ok, report.problems
    assert report.accounts == 4 and report.journal_entries == 9 and report.postings == 15


def test_changes_at_the_edges_chain_as_the_verifier_computes(client, make_user):
    # On PostgreSQL deposits, withdrawals and transfers run in the server-side
    # function ledger_post, which must hash every field exactly as
    # balance_api.chain does: awkward descriptions and amounts at the limits.
    largest = '99999999999999999.99'
    make_user(1)
    make_user(2)
    changes = [
        ('/balance/1', 'operation=add&balance=' + largest),
        ('/balance/1', 'operation=sub&balance=0.01'),
        ('/transfer', 'sender_id=1&receiver_id=2&balance=12345678901234567.89'
                      '&trans_desc=%C3%A9t%C3%A9%20%E2%82%AC%20%F0%9F%92%B8%20%22q%22%1F%5C'),
        ('/transfer', 'sender_id=2&receiver_id=1&balance=0.1&trans_desc=%20'),
        ('/balance/2', 'operation=sub&balance=12345678901234567.79'),
        ('/balance/1', 'operation=add&balance=0.01&trans_desc=' + 'x' * 255),
        ('/balance/2', 'operation=add&balance=7'),
    ]
    for path, body in changes:
        answer = client.simulate_put(path, headers=FORM, body=body)
        assert answer.status_code == 200, answer.text
    # Refused changes write nothing and break nothing.
    assert client.simulate_put('/balance/1', headers=FORM,
                               body='operation=add&balance=' + largest).json['code'] == 525
    assert client.simulate_put('/transfer', headers=FORM,
                               body='sender_id=2&receiver_id=1&balance=8').json['code'] == 505
    db = database.obj
    with db.connection_context():
        report = verify_ledger(db)
    assert report.ok, report.problems
    assert report.journal_entries == 2 + len(changes)
    assert client.simulate_get('/balance/1').json['balance'] == '87654321098765432.20'
    assert client.simulate_get('/balance/2').json['balance'] == '7.00'


def test_edited_amount_is_found(ledger):
    posting = _posting(ledger, 2)
    _tamper(ledger, "UPDATE posting SET amount = '60.00' WHERE id = %d" % posting)
    kinds, report = _kinds(ledger)
    assert {'running balance', 'hash chain', 'unbalanced entry'} <= kinds
    assert any('posting %d' % posting in p.detail for p in report.problems)


def test_edited_balance_is_found(ledger):
    _tamper(ledger, "UPDATE account SET balance = '1000.00' WHERE id = 3")
    kinds, report = _kinds(ledger)
    assert kinds == {'balance'}
    assert 'account 3' in report.problems[0].detail


def test_rewritten_description_is_found(ledger):
    _tamper(ledger, "UPDATE journal_entry SET transaction_description = 'innocent' "
                    "WHERE operation = 'balance_transfer'")
    kinds, _ = _kinds(ledger)
    assert kinds == {'hash chain'}


def test_deleted_posting_is_found(ledger):
    _tamper(ledger, 'DELETE FROM posting WHERE id = %d' % _posting(ledger, 1, nth=2))
    kinds, _ = _kinds(ledger)
    assert {'hash chain', 'unbalanced entry'} <= kinds


def test_deleted_newest_posting_is_found_by_the_account_hash(ledger):
    newest = ledger.execute_sql('SELECT MAX(id) FROM posting WHERE account_id = 3').fetchone()[0]
    external = ledger.execute_sql(
        'SELECT id FROM posting WHERE account_id = 0 AND journal_id = '
        '(SELECT journal_id FROM posting WHERE id = %d)' % newest).fetchone()[0]
    # Remove a whole withdrawal (both legs and its entry) and put the money back.
    _tamper(ledger,
            'DELETE FROM posting WHERE id IN (%d, %d)' % (newest, external),
            "DELETE FROM journal_entry WHERE operation = 'balance_sub'",
            "UPDATE account SET balance = '5.99' WHERE id = 3")
    kinds, report = _kinds(ledger)
    assert kinds == {'hash chain'}
    assert 'last hash' in report.problems[0].detail


def test_swapped_postings_are_found(ledger):
    first, second = _posting(ledger, 1, nth=1), _posting(ledger, 1, nth=2)
    columns = 'amount, balance_after, hash, journal_id, created_at'
    _tamper(ledger,
            'CREATE TEMPORARY TABLE swap AS SELECT id, %s FROM posting WHERE id IN (%d, %d)'
            % (columns, first, second),
            *['UPDATE posting SET (%s) = (SELECT %s FROM swap WHERE id = %d) WHERE id = %d'
              % (columns, columns, other, this)
              for this, other in ((first, second), (second, first))])
    kinds, _ = _kinds(ledger)
    assert 'hash chain' in kinds or 'running balance' in kinds


def test_deleted_journal_entry_and_orphans_are_found(ledger):
    _tamper(ledger, "DELETE FROM journal_entry WHERE operation = 'balance_sub'")
    kinds, _ = _kinds(ledger)
    assert 'orphan posting' in kinds


def test_moved_posting_time_is_found(ledger):
    _tamper(ledger, "UPDATE posting SET created_at = '2001-01-01 00:00:00' WHERE account_id = 2")
    kinds, _ = _kinds(ledger)
    assert kinds == {'timestamp'}


def test_negative_balance_is_found(ledger):
    # The schema refuses it; a copy without the constraint could still hold one.
    if ledger.__class__.__name__.startswith('Sqlite'):
        ledger.execute_sql('PRAGMA ignore_check_constraints = ON')
        drop = 'SELECT 1'
    else:
        drop = 'ALTER TABLE account DROP CONSTRAINT account_balance_check'
    _tamper(ledger, drop, "UPDATE account SET balance = '-1.00' WHERE id = 3")
    kinds, _ = _kinds(ledger)
    assert 'negative balance' in kinds


def test_verify_command_exit_status(ledger, database_url):
    command = [sys.executable, '-m', 'balance_api', 'verify']
    env = {'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'}
    intact = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert intact.returncode == 0 and 'ledger OK' in intact.stdout
    _tamper(ledger, "UPDATE account SET balance = '1.00' WHERE id = 1")
    broken = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert broken.returncode == 1
    assert 'PROBLEM balance: account 1' in broken.stdout
