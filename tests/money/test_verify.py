"""The verifier names every kind of tampering it can see, on a copy of real
ledger data, and the one it cannot see is pinned down too."""
import subprocess
import sys
import threading

import pytest

from balance_api import __main__ as command_line
from balance_api.money.chain import GENESIS_HASH
from balance_api.storage.db import database, is_postgres, open_database
from balance_api.money.models import JournalEntry, Posting
from balance_api.money.verify import verify_ledger
from conftest import FORM, ROOT
from helpers import rechain, transfer


@pytest.fixture
def ledger_data(client, make_user):
    """A small ledger written through the API.

    Journal entries, in order: 1 user_add 1, 2 add 100 to 1, 3 user_add 2,
    4 add 50 to 2, 5 user_add 3, 6 transfer 10.01 from 1 to 2, 7 transfer 5
    from 2 to 3, 8 transfer 0.99 from 1 to 3, 9 sub 1 from 3. Balances: 1
    89.00, 2 55.01, 3 4.99.
    """
    make_user(1, '100.00')
    make_user(2, '50.00')
    make_user(3)
    for body in ('sender_id=1&receiver_id=2&balance=10.01',
                 'sender_id=2&receiver_id=3&balance=5',
                 'sender_id=1&receiver_id=3&balance=0.99'):
        assert client.simulate_put('/transfer', headers=FORM, body=body).status_code == 200
    assert client.simulate_put('/balance/3', headers=FORM,
                               body='operation=sub&balance=1').status_code == 200


@pytest.fixture
def open_raw(database_url):
    """Opens a raw database handle, for tampering, once the API's work is done
    (the models are bound to it from then on)."""
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
def ledger(ledger_data, open_raw):
    return open_raw()


@pytest.fixture
def rule_starts_restored(ledger):
    """Puts back where the ledger's rules start: on PostgreSQL the table
    outlives the test, which empties only the accounts and the journal."""
    rows = ledger.execute_sql('SELECT rule, first_journal_id FROM ledger_rule_start').fetchall()
    yield
    _tamper(ledger, 'DELETE FROM ledger_rule_start',
            *["INSERT INTO ledger_rule_start (rule, first_journal_id) VALUES ('%s', %d)"
              % tuple(row) for row in rows])


def _sqlite(db):
    return not is_postgres(db)


def _tamper(db, *statements):
    # Let the tampering break foreign keys, as a raw edit of the files could.
    if _sqlite(db):
        db.execute_sql('PRAGMA foreign_keys = OFF')
    with db.atomic():
        if not _sqlite(db):
            db.execute_sql("SET LOCAL session_replication_role = 'replica'")
        for statement in statements:
            db.execute_sql(statement)
    if _sqlite(db):
        db.execute_sql('PRAGMA foreign_keys = ON')


def _tamper_unchecked(db, table, *statements):
    """Tamper past ``table``'s CHECK constraints, which a copy of the data
    without them would not have. On PostgreSQL they are put back as NOT
    VALID, so the rest of the session's tests still have them."""
    if _sqlite(db):
        db.execute_sql('PRAGMA ignore_check_constraints = ON')
        try:
            _tamper(db, *statements)
        finally:
            db.execute_sql('PRAGMA ignore_check_constraints = OFF')
        return
    checks = db.execute_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = '%s'::regclass AND contype = 'c'" % table).fetchall()
    assert checks, table
    _tamper(db, *['ALTER TABLE %s DROP CONSTRAINT %s' % (table, name) for name, _ in checks],
            *statements,
            *['ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID' % (table, name, definition)
              for name, definition in checks])


def _found(db, **options):
    """The problems verify reports, as (kind, account, posting, journal entry)."""
    return [(p.kind, p.account_id, p.posting_id, p.journal_id)
            for p in verify_ledger(db, **options).problems]


def _one(db, sql):
    return db.execute_sql(sql).fetchone()[0]


def _posting(db, account_id, nth):
    """The id of the account's ``nth`` posting (0 is its first)."""
    return _one(db, 'SELECT id FROM posting WHERE account_id = %d ORDER BY id '
                    'LIMIT 1 OFFSET %d' % (account_id, nth))


def _postings(db, where):
    return [tuple(row) for row in db.execute_sql(
        'SELECT id, account_id, journal_id FROM posting WHERE %s ORDER BY account_id, id'
        % where).fetchall()]


def _entry(db, operation, nth=-1):
    ids = [row[0] for row in db.execute_sql(
        "SELECT id FROM journal_entry WHERE operation = '%s' ORDER BY id" % operation)]
    return ids[nth]


def _leg(db, journal_id, account_id):
    return _one(db, 'SELECT id FROM posting WHERE journal_id = %d AND account_id = %d'
                % (journal_id, account_id))


# -- an intact ledger ---------------------------------------------------------

def test_intact_ledger_verifies(ledger):
    report = verify_ledger(ledger)
    assert report.problems == [] and report.unlisted == 0 and report.ok
    assert (report.accounts, report.journal_entries, report.postings) == (4, 9, 15)


def _restore(client, uid):
    result = client.simulate_post('/user', headers=FORM, body='uid=%d&restore=true' % uid)
    assert result.status_code == 201, result.text


def test_deleted_and_restored_users_verify(client, make_user, ledger_data, open_raw):
    make_user(4, '5')
    assert client.simulate_put('/balance/4', headers=FORM,
                               body='operation=sub&balance=5').status_code == 200
    for _ in range(2):
        assert client.simulate_delete('/balance_delete_user/4').status_code == 200
        _restore(client, 4)
    make_user(5)
    assert client.simulate_delete('/balance_delete_user/5').status_code == 200
    db = open_raw()
    report = verify_ledger(db)
    assert report.problems == []
    assert (report.accounts, report.journal_entries) == (6, 9 + 9)


def test_changes_at_the_edges_chain_as_the_verifier_computes(client, make_user):
    # On PostgreSQL deposits, withdrawals and transfers run in the server-side
    # function ledger_post, which must hash every field exactly as
    # balance_api.money.chain does: awkward descriptions and amounts at the limits.
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
    assert report.problems == []
    assert report.journal_entries == 2 + len(changes)
    assert client.simulate_get('/balance/1').json['balance'] == '87654321098765432.20'
    assert client.simulate_get('/balance/2').json['balance'] == '7.00'


def test_a_new_ledger_verifies(open_raw):
    report = verify_ledger(open_raw())
    assert report.ok
    assert (report.accounts, report.postings, report.journal_entries) == (1, 0, 0)


def test_a_change_committed_while_verify_runs_is_not_seen(client, ledger_data):
    # The passes over accounts, postings and entries are separate queries:
    # a change committed between them must not be half seen.
    db = database.obj
    answers = []

    def commit_a_transfer(kind, count):
        if not answers:
            writer = threading.Thread(
                target=lambda: answers.append(transfer(client, 1, 2, '1.00')))
            writer.start()
            writer.join(20)
            assert answers, 'the transfer did not finish'

    with db.connection_context():
        report = verify_ledger(db, progress=commit_a_transfer, progress_every=1)
    assert answers[0].status_code == 200, answers[0].text
    assert report.ok
    assert (report.accounts, report.postings, report.journal_entries) == (4, 15, 9)
    with db.connection_context():
        assert verify_ledger(db).journal_entries == 10


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_postgresql_rows_are_read_through_server_side_cursors(ledger):
    # A client-side cursor would hold the whole result in the verifier's memory.
    read_through_cursors = {}

    def look(kind, count):
        statements = [row[0] for row in ledger.execute_sql('SELECT statement FROM pg_cursors')]
        read_through_cursors.setdefault(kind, set()).update(
            table for table in ('account', 'posting', 'journal_entry')
            if any('FROM "%s"' % table in statement for statement in statements))

    assert verify_ledger(ledger, progress=look, progress_every=1).ok
    assert read_through_cursors == {'postings': {'account', 'posting'},
                                    'journal entries': {'journal_entry'}}


# -- balances and running balances --------------------------------------------

def test_edited_amount_is_found_once_per_kind(ledger):
    posting = _posting(ledger, 2, 2)  # +10.01, from entry 6
    _tamper(ledger, "UPDATE posting SET amount = '60.00' WHERE id = %d" % posting)
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id) for p in report.problems] == [
        ('running balance', 2, posting, None),
        ('hash chain', 2, posting, 6),
        ('balance', 2, None, None),
        ('unbalanced entry', None, None, 6),
    ]
    assert [p.detail for p in report.problems] == [
        'account 2 posting %d: balance after is 60.01, the postings sum to 110.00' % posting,
        'account 2 posting %d (journal 6): hash does not match its content or its predecessor'
        % posting,
        'account 2: stored balance 55.01, its postings sum to 105.00',
        'journal entry 6: postings sum to 49.99',
    ]


def test_one_edited_balance_after_is_one_running_balance_problem(ledger):
    posting = _posting(ledger, 2, 2)  # balance after 60.01; two more changes follow it
    _tamper(ledger, "UPDATE posting SET balance_after = '70.00' WHERE id = %d" % posting)
    assert _found(ledger) == [('running balance', 2, posting, None),
                              ('hash chain', 2, posting, 6)]


def test_missing_balance_after_is_one_running_balance_problem(ledger):
    posting = _posting(ledger, 2, 1)  # the deposit of 50.00; two more changes follow it
    _tamper(ledger, 'UPDATE posting SET balance_after = NULL WHERE id = %d' % posting)
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.posting_id, p.detail) for p in report.problems] == [
        ('running balance', 2, posting,
         'account 2 posting %d: balance after is missing, the postings sum to 50.00' % posting),
        ('hash chain', 2, posting, 'account 2 posting %d (journal 4): hash does not match its '
                                   'content or its predecessor' % posting),
    ]


def test_edited_balance_is_found(ledger):
    _tamper(ledger, "UPDATE account SET balance = '1000.00' WHERE id = 3")
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.detail) for p in report.problems] == [
        ('balance', 3, 'account 3: stored balance 1000.00, its postings sum to 4.99')]


def test_negative_balance_is_found(ledger):
    _tamper_unchecked(ledger, 'account', "UPDATE account SET balance = '-1.00' WHERE id = 3")
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.detail) for p in report.problems] == [
        ('balance', 3, 'account 3: stored balance -1.00, its postings sum to 4.99'),
        ('negative balance', 3, 'account 3: -1.00'),
    ]


# -- hash chains ----------------------------------------------------------------

def test_rewritten_descriptions_are_found_on_every_leg(ledger):
    _tamper(ledger, "UPDATE journal_entry SET transaction_description = 'innocent' "
                    "WHERE operation = 'balance_transfer'")
    legs = _postings(ledger, "journal_id IN (SELECT id FROM journal_entry "
                             "WHERE operation = 'balance_transfer')")
    assert len(legs) == 6
    assert _found(ledger) == [('hash chain', account, posting, journal)
                              for posting, account, journal in legs]


def test_deleted_posting_is_found(ledger):
    deleted = _posting(ledger, 1, 2)  # -10.01, from entry 6
    following = _posting(ledger, 1, 3)
    _tamper(ledger, 'DELETE FROM posting WHERE id = %d' % deleted)
    assert _found(ledger) == [
        ('running balance', 1, following, None),
        ('hash chain', 1, following, 8),
        ('balance', 1, None, None),
        ('unbalanced entry', None, None, 6),
    ]


def test_deleted_newest_posting_is_found_by_the_account_hash(ledger):
    withdrawal = _entry(ledger, 'balance_sub')
    # Remove a whole withdrawal (both legs and its entry) and put the money back.
    _tamper(ledger,
            'DELETE FROM posting WHERE journal_id = %d' % withdrawal,
            'DELETE FROM journal_entry WHERE id = %d' % withdrawal,
            "UPDATE account SET balance = '5.99' WHERE id = 3")
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id) for p in report.problems] == [
        ('hash chain', 3), ('time order', 3)]
    assert report.problems[0].detail == (
        'account 3: last hash on the account is not the hash of its last posting (a posting '
        'was deleted or added)')
    assert report.problems[1].detail.startswith('account 3: last posted at ')


def test_newest_transfer_removed_with_its_accounts_rewound_is_not_detected(
        client, ledger_data, open_raw):
    # The limit of an unkeyed chain: a change that is the newest on every
    # account it touches can be cut off, and the account rows set back to
    # the posting before it, leaving a ledger that is consistent in every
    # respect. Journal ids may have gaps anyway. Only signed checkpoints
    # taken outside the database could show it.
    assert transfer(client, 1, 2, '7.00').status_code == 200
    db = open_raw()
    newest = _one(db, 'SELECT MAX(id) FROM journal_entry')
    rewind = ["UPDATE account SET (balance, last_hash, last_posted_at) = (SELECT balance_after, "
              "hash, created_at FROM posting WHERE account_id = %d AND journal_id <> %d "
              "ORDER BY id DESC LIMIT 1) WHERE id = %d"
              % (account, newest, account) for account in (1, 2)]
    _tamper(db, 'DELETE FROM posting WHERE journal_id = %d' % newest,
            'DELETE FROM journal_entry WHERE id = %d' % newest, *rewind)
    report = verify_ledger(db)
    assert report.problems == [] and report.ok
    assert (report.journal_entries, report.postings) == (9, 15)
    assert client.simulate_get('/balance/1').json['balance'] == '89.00'


def test_swapped_postings_are_found(ledger):
    first, second = _posting(ledger, 1, 1), _posting(ledger, 1, 2)  # entries 2 and 6
    last = _posting(ledger, 1, 3)
    columns = 'amount, balance_after, hash, journal_id, created_at'
    _tamper(ledger,
            'CREATE TEMPORARY TABLE swap AS SELECT id, %s FROM posting WHERE id IN (%d, %d)'
            % (columns, first, second),
            *['UPDATE posting SET (%s) = (SELECT %s FROM swap WHERE id = %d) WHERE id = %d'
              % (columns, columns, other, this)
              for this, other in ((first, second), (second, first))])
    assert _found(ledger) == [
        ('running balance', 1, first, None),
        ('hash chain', 1, first, 6),
        ('time order', 1, second, None),
        ('running balance', 1, second, None),
        ('hash chain', 1, second, 2),
        # Its own content is intact; its predecessor's hash is not the one it chained to.
        ('hash chain', 1, last, 8),
    ]


# -- times ----------------------------------------------------------------------

def test_moved_posting_times_are_found(ledger):
    _tamper(ledger, "UPDATE posting SET created_at = '2001-01-01 00:00:00' WHERE account_id = 2")
    postings = _postings(ledger, 'account_id = 2')
    expected = [('timestamp', 2, postings[0][0], postings[0][2])]
    for posting, _, journal in postings[1:]:
        # All at one moment: each is also no later than the one before it.
        expected += [('timestamp', 2, posting, journal), ('time order', 2, posting, None)]
    # And the account's last posted time is not its newest posting's any more.
    assert _found(ledger) == expected + [('time order', 2, None, None)]


def test_posting_time_apart_from_its_entrys_is_named(ledger):
    withdrawal = _entry(ledger, 'balance_sub')
    posting = _leg(ledger, withdrawal, 3)
    entry_time = JournalEntry.get_by_id(withdrawal).created_at
    _tamper(ledger, "UPDATE posting SET created_at = '2100-01-01 00:00:00' WHERE id = %d"
            % posting)
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id) for p in report.problems] == [
        ('timestamp', 3, posting, withdrawal), ('time order', 3, None, None)]
    assert report.problems[0].detail == (
        'account 3 posting %d: time 2100-01-01 00:00:00 differs from its journal entry %d (%s)'
        % (posting, withdrawal, entry_time))


def test_time_going_backwards_within_an_account_is_found(ledger):
    withdrawal = _entry(ledger, 'balance_sub')
    _tamper(ledger,
            "UPDATE journal_entry SET created_at = '2001-01-01 00:00:00' WHERE id = %d"
            % withdrawal,
            "UPDATE posting SET created_at = '2001-01-01 00:00:00' WHERE journal_id = %d"
            % withdrawal)
    rechain(ledger)
    report = verify_ledger(ledger)
    posting = _leg(ledger, withdrawal, 3)
    # The external account's legs are numbered as concurrent deposits
    # commit, so only user accounts are held to time order.
    assert [(p.kind, p.account_id, p.posting_id) for p in report.problems] == [
        ('time order', 3, posting)]
    before = Posting.get_by_id(_posting(ledger, 3, 2)).created_at
    assert report.problems[0].detail == (
        'account 3 posting %d: time 2001-01-01 00:00:00 is not after %s, the time of the '
        'posting before it' % (posting, before))


# A PostgreSQL timestamp column holds only times.
@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
def test_unreadable_entry_time_is_found(ledger):
    withdrawal = _entry(ledger, 'balance_sub')
    _tamper(ledger, "UPDATE journal_entry SET created_at = 'yesterday' WHERE id = %d"
            % withdrawal)
    user, external = _leg(ledger, withdrawal, 3), _leg(ledger, withdrawal, 0)
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id) for p in report.problems] == [
        ('timestamp', 0, external, withdrawal),
        ('hash chain', 0, external, withdrawal),
        ('timestamp', 3, user, withdrawal),
        ('hash chain', 3, user, withdrawal),
    ]
    assert report.problems[0].detail == "journal entry %d: time 'yesterday' is not a time" % (
        withdrawal)


@pytest.mark.parametrize('database_url', ['sqlite'], indirect=True)
def test_unreadable_entry_time_is_a_hash_problem_even_with_a_blank_hash(ledger):
    withdrawal = _entry(ledger, 'balance_sub')
    user, external = _leg(ledger, withdrawal, 3), _leg(ledger, withdrawal, 0)
    _tamper(ledger, "UPDATE journal_entry SET created_at = 'yesterday' WHERE id = %d"
            % withdrawal,
            "UPDATE posting SET hash = '' WHERE journal_id = %d" % withdrawal)
    assert _found(ledger) == [
        ('timestamp', 0, external, withdrawal),
        ('hash chain', 0, external, withdrawal),
        ('timestamp', 3, user, withdrawal),
        ('hash chain', 3, user, withdrawal),
        ('hash chain', 3, None, None),
    ]


@pytest.mark.usefixtures('rule_starts_restored')
def test_entries_from_before_the_time_order_rule_are_not_held_to_it(ledger):
    withdrawal = _entry(ledger, 'balance_sub')
    _tamper(ledger,
            "UPDATE journal_entry SET created_at = '2001-01-01 00:00:00' WHERE id = %d"
            % withdrawal,
            "UPDATE posting SET created_at = '2001-01-01 00:00:00' WHERE journal_id = %d"
            % withdrawal,
            "UPDATE account SET last_posted_at = '2001-01-01 00:00:00' WHERE id = 3")
    rechain(ledger)
    posting = _leg(ledger, withdrawal, 3)
    assert _found(ledger) == [('time order', 3, posting, None)]
    # As if the ledger had been written before the rule came in with the withdrawal's successor.
    _tamper(ledger, "UPDATE ledger_rule_start SET first_journal_id = %d WHERE rule = 'time order'"
            % (withdrawal + 1))
    assert _found(ledger) == []


def _date_the_withdrawal_back(ledger):
    """Move the newest entry, account 3's withdrawal, before all others and
    rechain; returns the withdrawal's posting on account 3."""
    withdrawal = _entry(ledger, 'balance_sub')
    _tamper(ledger,
            "UPDATE journal_entry SET created_at = '2001-01-01 00:00:00' WHERE id = %d"
            % withdrawal,
            "UPDATE posting SET created_at = '2001-01-01 00:00:00' WHERE journal_id = %d"
            % withdrawal,
            "UPDATE account SET last_posted_at = '2001-01-01 00:00:00' WHERE id = 3")
    rechain(ledger)
    return withdrawal, _leg(ledger, withdrawal, 3)


@pytest.mark.usefixtures('rule_starts_restored')
def test_the_entry_the_time_order_rule_starts_with_is_held_to_it(ledger):
    withdrawal, posting = _date_the_withdrawal_back(ledger)
    _tamper(ledger, "UPDATE ledger_rule_start SET first_journal_id = %d WHERE rule = 'time order'"
            % withdrawal)
    assert _found(ledger) == [('time order', 3, posting, None)]


@pytest.mark.usefixtures('rule_starts_restored')
def test_without_a_recorded_start_the_time_order_rule_holds_for_every_entry(ledger):
    _, posting = _date_the_withdrawal_back(ledger)
    _tamper(ledger, "DELETE FROM ledger_rule_start WHERE rule = 'time order'")
    assert _found(ledger) == [('time order', 3, posting, None)]


def test_last_posted_time_that_is_not_the_newest_postings_is_found(ledger):
    _tamper(ledger, "UPDATE account SET last_posted_at = '2100-01-01 00:00:00' WHERE id = 2")
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id) for p in report.problems] == [('time order', 2)]
    newest = _one(ledger, 'SELECT max(id) FROM posting WHERE account_id = 2')
    assert report.problems[0].detail.startswith(
        'account 2: last posted at 2100-01-01 00:00:00, but its newest posting %d is of ' % newest)


# -- deleted accounts -------------------------------------------------------------

def test_account_marked_deleted_with_money_on_it_is_found(client, make_user, ledger_data,
                                                          open_raw):
    make_user(4, '40.00')
    db = open_raw()
    deposit = _entry(db, 'balance_add')
    posting = _leg(db, deposit, 4)
    _tamper(db, 'UPDATE account SET deleted_at = CURRENT_TIMESTAMP WHERE id = 4')
    assert [row['user_id'] for row in client.simulate_get('/balance').json] == [1, 2, 3]
    report = verify_ledger(db)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id, p.detail)
            for p in report.problems] == [
        ('deletion', 4, None, None, 'account 4 is deleted but holds 40.00'),
        ('deletion', 4, posting, deposit,
         'account 4 is deleted, but its last posting %d (journal entry %d) is a balance_add, '
         'not a user_delete' % (posting, deposit)),
    ]


def test_deleted_user_not_marked_deleted_is_found(client, make_user, ledger_data, open_raw):
    make_user(4)
    assert client.simulate_delete('/balance_delete_user/4').status_code == 200
    db = open_raw()
    deletion = _entry(db, 'user_delete')
    posting = _leg(db, deletion, 4)
    _tamper(db, 'UPDATE account SET deleted_at = NULL WHERE id = 4')
    report = verify_ledger(db)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id, p.detail)
            for p in report.problems] == [
        ('deletion', 4, posting, deletion,
         'account 4 is not marked deleted, but its last posting %d (journal entry %d) is a '
         'user_delete' % (posting, deletion))]


def test_restored_user_marked_deleted_again_is_found(client, make_user, ledger_data, open_raw):
    make_user(4)
    assert client.simulate_delete('/balance_delete_user/4').status_code == 200
    _restore(client, 4)
    db = open_raw()
    revival = _entry(db, 'user_add')
    _tamper(db, 'UPDATE account SET deleted_at = CURRENT_TIMESTAMP WHERE id = 4')
    assert _found(db) == [('deletion', 4, _leg(db, revival, 4), revival)]


# -- journal entries and their legs ---------------------------------------------

def test_transfer_with_postings_on_other_accounts_is_found(client, ledger_data, open_raw):
    assert client.simulate_put('/balance/3', headers=FORM,
                               body='operation=add&balance=20').status_code == 200
    assert transfer(client, 1, 2, '10.00').status_code == 200
    db = open_raw()
    entry = _one(db, 'SELECT MAX(id) FROM journal_entry')
    _tamper(db, "UPDATE posting SET account_id = 3, amount = '-5.00' "
                "WHERE journal_id = %d AND account_id = 1" % entry,
            "UPDATE posting SET amount = '5.00' WHERE journal_id = %d AND account_id = 2" % entry)
    rechain(db)
    report = verify_ledger(db)
    assert [(p.kind, p.journal_id, p.detail) for p in report.problems] == [
        ('entry legs', entry,
         'journal entry %d (balance_transfer of 10.00 from 1 to 2) has postings -5.00 on '
         'account 3, +5.00 on account 2; it implies -10.00 on account 1, +10.00 on account 2'
         % entry)]


@pytest.mark.parametrize('tampering, detail', [
    # The newest entry is a withdrawal of 1.00 from account 3.
    (["UPDATE posting SET amount = '-0.50' WHERE journal_id = {entry} AND account_id = 3",
      "UPDATE posting SET amount = '0.50' WHERE journal_id = {entry} AND account_id = 0"],
     'journal entry {entry} (balance_sub of 1.00 from 0 to 3) has postings -0.50 on account 3, '
     '+0.50 on account 0; it implies -1.00 on account 3, +1.00 on account 0'),
    (['UPDATE posting SET account_id = 2 WHERE journal_id = {entry} AND account_id = 3'],
     'journal entry {entry} (balance_sub of 1.00 from 0 to 3) has postings -1.00 on account 2, '
     '+1.00 on account 0; it implies -1.00 on account 3, +1.00 on account 0'),
    (["INSERT INTO posting (journal_id, account_id, amount, balance_after, created_at, hash) "
      "SELECT journal_id, 2, '0.00', NULL, created_at, '' FROM posting "
      "WHERE journal_id = {entry} AND account_id = 3"],
     'journal entry {entry} (balance_sub of 1.00 from 0 to 3) has postings -1.00 on account 3, '
     '+1.00 on account 0, 0.00 on account 2; it implies -1.00 on account 3, +1.00 on account 0'),
    (["UPDATE journal_entry SET operation = 'balance_add', sum = '-1.00' WHERE id = {entry}"],
     'journal entry {entry} (balance_add of -1.00 from 0 to 3): a balance_add moves a positive '
     'amount'),
    (['UPDATE journal_entry SET sender_id = 2 WHERE id = {entry}'],
     'journal entry {entry} (balance_sub of 1.00 from 2 to 3): a balance_sub is from account 0 '
     'to a user'),
    (["UPDATE journal_entry SET operation = 'balance_gift' WHERE id = {entry}"],
     "journal entry {entry} (balance_gift of 1.00 from 0 to 3): unknown operation "
     "'balance_gift'"),
], ids=['wrong amount', 'wrong account', 'extra leg', 'negative amount', 'wrong sender',
        'unknown operation'])
def test_newest_entry_with_legs_its_operation_does_not_imply_is_found(ledger, tampering,
                                                                      detail):
    entry = _entry(ledger, 'balance_sub')
    assert entry == _one(ledger, 'SELECT MAX(id) FROM journal_entry')
    _tamper_unchecked(ledger, 'journal_entry',
                      *[statement.format(entry=entry) for statement in tampering])
    rechain(ledger)
    report = verify_ledger(ledger)
    assert [(p.kind, p.journal_id, p.detail) for p in report.problems] == [
        ('entry legs', entry, detail.format(entry=entry))]


@pytest.mark.parametrize('tampering, detail', [
    (['UPDATE posting SET account_id = 2 WHERE journal_id = {entry}'],
     'journal entry {entry} (user_add of 0.00 from 0 to 3) has postings 0.00 on account 2; it '
     'implies 0.00 on account 3'),
    (["UPDATE journal_entry SET sum = '1.00' WHERE id = {entry}"],
     'journal entry {entry} (user_add of 1.00 from 0 to 3): a user_add moves no money'),
    (["UPDATE journal_entry SET operation = 'user_delete' WHERE id = {entry}"],
     'journal entry {entry} (user_delete of 0.00 from 0 to 3): a user_delete is from a user to '
     'account 0'),
], ids=['wrong account', 'money', 'wrong direction'])
def test_user_entry_with_wrong_legs_is_found(ledger, tampering, detail):
    entry = _entry(ledger, 'user_add')
    _tamper(ledger, *[statement.format(entry=entry) for statement in tampering])
    rechain(ledger)
    report = verify_ledger(ledger)
    assert [(p.kind, p.journal_id, p.detail) for p in report.problems] == [
        ('entry legs', entry, detail.format(entry=entry))]


@pytest.mark.parametrize('operation, nth, tampering, detail', [
    ('balance_add', 0,
     ["UPDATE journal_entry SET operation = 'balance_transfer' WHERE id = {entry}"],
     'journal entry {entry} (balance_transfer of 100.00 from 0 to 1): a transfer is between '
     'two different users'),
    ('balance_transfer', 0,
     ['UPDATE journal_entry SET receiver_id = 1 WHERE id = {entry}',
      'UPDATE posting SET account_id = 1 WHERE journal_id = {entry} AND account_id = 2'],
     'journal entry {entry} (balance_transfer of 10.01 from 1 to 1): a transfer is between '
     'two different users'),
    ('balance_transfer', 2,
     ["UPDATE journal_entry SET sum = '0.00' WHERE id = {entry}",
      "UPDATE posting SET amount = '0.00' WHERE journal_id = {entry}"],
     'journal entry {entry} (balance_transfer of 0.00 from 1 to 3): a transfer moves a '
     'positive amount'),
    ('balance_sub', -1,
     ["UPDATE journal_entry SET sum = '0.00' WHERE id = {entry}",
      "UPDATE posting SET amount = '0.00' WHERE journal_id = {entry}"],
     'journal entry {entry} (balance_sub of 0.00 from 0 to 3): a balance_sub moves a '
     'positive amount'),
    ('user_add', -1, ['UPDATE journal_entry SET sender_id = 2 WHERE id = {entry}'],
     'journal entry {entry} (user_add of 0.00 from 2 to 3): a user_add is from account 0 to '
     'a user'),
], ids=['deposit as a transfer', 'transfer to oneself', 'transfer of nothing',
        'withdrawal of nothing', 'user_add from a user'])
def test_entry_between_wrong_parties_or_of_no_money_is_found(ledger, operation, nth,
                                                             tampering, detail):
    # Its postings are exactly what it would imply if it were valid.
    entry = _entry(ledger, operation, nth)
    _tamper(ledger, *[statement.format(entry=entry) for statement in tampering])
    rechain(ledger)
    report = verify_ledger(ledger)
    # A transfer to oneself also puts two postings of one moment on one account.
    assert [(p.kind, p.journal_id, p.detail) for p in report.problems
            if p.kind != 'time order'] == [('entry legs', entry, detail.format(entry=entry))]


@pytest.mark.parametrize('tampering, detail', [
    ('UPDATE journal_entry SET receiver_id = 2 WHERE id = {entry}',
     'journal entry {entry} (user_delete of 0.00 from 4 to 2): a user_delete is from a user to '
     'account 0'),
    ("UPDATE journal_entry SET sum = '1.00' WHERE id = {entry}",
     'journal entry {entry} (user_delete of 1.00 from 4 to 0): a user_delete moves no money'),
], ids=['to a user', 'money'])
def test_user_delete_with_wrong_legs_is_found(client, make_user, ledger_data, open_raw,
                                              tampering, detail):
    make_user(4)
    assert client.simulate_delete('/balance_delete_user/4').status_code == 200
    db = open_raw()
    entry = _entry(db, 'user_delete')
    _tamper(db, tampering.format(entry=entry))
    rechain(db)
    report = verify_ledger(db)
    assert [(p.kind, p.journal_id, p.detail) for p in report.problems] == [
        ('entry legs', entry, detail.format(entry=entry))]


def test_entry_without_postings_is_found(ledger):
    entry = _entry(ledger, 'user_add')  # account 3's, a single leg of 0.00
    _tamper(ledger, 'DELETE FROM posting WHERE journal_id = %d' % entry)
    rechain(ledger)
    report = verify_ledger(ledger)
    assert [(p.kind, p.journal_id, p.detail) for p in report.problems] == [
        ('no postings', entry, 'journal entry %d has no postings' % entry)]


def test_deleted_journal_entry_and_orphans_are_found(ledger):
    withdrawal = _entry(ledger, 'balance_sub')
    user, external = _leg(ledger, withdrawal, 3), _leg(ledger, withdrawal, 0)
    _tamper(ledger, 'DELETE FROM journal_entry WHERE id = %d' % withdrawal)
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id) for p in report.problems] == [
        ('balance', 3, None, None),
        ('hash chain', 3, None, None),
        # Its newest posting is left out with its entry.
        ('time order', 3, None, None),
        ('orphan posting', 3, user, withdrawal),
        ('orphan posting', 0, external, withdrawal),
    ]
    assert report.problems[3].detail == (
        'posting %d names journal entry %d, which does not exist' % (user, withdrawal))


def test_postings_of_missing_accounts_are_found_wherever_they_sort(ledger):
    # Account 1 sorts between existing accounts (0 and 2), account 3 after the last.
    orphans = _postings(ledger, 'account_id IN (1, 3)')
    _tamper(ledger, 'DELETE FROM account WHERE id IN (1, 3)')
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id) for p in report.problems] == [
        ('orphan posting', account, posting, journal) for posting, account, journal in orphans]
    assert report.problems[0].detail == 'posting %d names account 1, which does not exist' % (
        orphans[0][0])
    assert report.accounts == 2


def test_missing_accounts_postings_followed_only_by_an_account_without_any_are_found(ledger):
    orphans = _postings(ledger, 'account_id = 3')
    _tamper(ledger, 'DELETE FROM account WHERE id = 3',
            "INSERT INTO account (id, balance, last_hash, created_at) "
            "VALUES (4, '0.00', '%s', CURRENT_TIMESTAMP)" % GENESIS_HASH)
    report = verify_ledger(ledger)
    assert [(p.kind, p.account_id, p.posting_id, p.journal_id) for p in report.problems] == [
        ('orphan posting', account, posting, journal) for posting, account, journal in orphans
    ] + [('no postings', 4, None, None)]
    assert report.problems[-1].detail == 'account 4 has no postings'


def test_account_without_postings_is_found_and_the_next_accounts_still_checked(
        make_user, ledger_data, open_raw):
    make_user(5)
    db = open_raw()
    _tamper(db, "INSERT INTO account (id, balance, last_hash, created_at) "
                "VALUES (4, '0.00', '%s', CURRENT_TIMESTAMP)" % GENESIS_HASH,
            "UPDATE account SET balance = '3.00' WHERE id = 5")
    assert _found(db) == [('no postings', 4, None, None), ('balance', 5, None, None)]


# -- the report -----------------------------------------------------------------

def test_problems_beyond_the_cap_are_counted_not_listed(ledger):
    _tamper(ledger, "UPDATE journal_entry SET transaction_description = 'innocent' "
                    "WHERE operation = 'balance_transfer'")
    everything = verify_ledger(ledger).problems
    assert len(everything) == 6
    capped = verify_ledger(ledger, max_problems=4)
    assert (capped.problems, capped.unlisted, capped.ok) == (everything[:4], 2, False)
    exact = verify_ledger(ledger, max_problems=6)
    assert (exact.problems, exact.unlisted) == (everything, 0)
    silent = verify_ledger(ledger, max_problems=0)
    assert (silent.problems, silent.unlisted, silent.ok) == ([], 6, False)


def test_at_most_1000_problems_are_listed_unless_asked_otherwise(open_raw):
    db = open_raw()
    _tamper(db, 'INSERT INTO account (id, balance, last_hash, created_at) VALUES ' + ', '.join(
        "(%d, '0.00', '%s', CURRENT_TIMESTAMP)" % (uid, GENESIS_HASH) for uid in range(1, 1002)))
    report = verify_ledger(db)
    assert (len(report.problems), report.unlisted) == (1000, 1)
    assert report.problems[-1] == ('no postings', 'account 1000 has no postings', 1000, None,
                                   None, None)


def test_progress_can_be_reported_for_every_row(ledger):
    calls = []
    verify_ledger(ledger, progress=lambda kind, count: calls.append((kind, count)),
                  progress_every=1)
    assert calls == ([('postings', n) for n in range(1, 16)]
                     + [('journal entries', n) for n in range(1, 10)])


def test_progress_is_reported_every_so_many_rows(ledger):
    calls = []
    report = verify_ledger(ledger, progress=lambda kind, count: calls.append((kind, count)),
                           progress_every=4)
    assert report.ok
    assert calls == [('postings', 4), ('postings', 8), ('postings', 12),
                     ('journal entries', 4), ('journal entries', 8)]
    with pytest.raises(ValueError, match='^progress_every must be positive$'):
        verify_ledger(ledger, progress_every=0)


def test_verify_command_exit_status(ledger, database_url):
    command = [sys.executable, '-m', 'balance_api', 'verify']
    env = {'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'}
    intact = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert intact.returncode == 0
    assert intact.stdout.splitlines() == ['accounts: 4, postings: 15, journal entries: 9',
                                          'ledger OK']
    _tamper(ledger, "UPDATE account SET balance = '1.00' WHERE id = 1")
    broken = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        'accounts: 4, postings: 15, journal entries: 9',
        'PROBLEM balance: account 1: stored balance 1.00, its postings sum to 89.00',
        'ledger BROKEN: 1 problem(s)',
    ]


def test_verify_command_counts_the_problems_it_does_not_list(ledger, database_url,
                                                             monkeypatch, capsys):
    _tamper(ledger, "UPDATE journal_entry SET transaction_description = 'innocent' "
                    "WHERE operation = 'balance_transfer'")
    capped = verify_ledger(ledger, max_problems=2)
    monkeypatch.setenv('DATABASE_URL', database_url)
    monkeypatch.setattr('balance_api.money.verify.verify_ledger',
                        lambda db, progress: capped)
    assert command_line.main(['verify']) == 1
    assert capsys.readouterr().out.splitlines() == [
        'accounts: 4, postings: 15, journal entries: 9',
        # The key that made the entry names the problem's suspect change.
        *['PROBLEM hash chain: %s [made with key test-admin]' % p.detail
          for p in capped.problems],
        '... and 4 more problem(s), not listed',
        'ledger BROKEN: 6 problem(s)',
    ]
