"""Signed checkpoints: taking them while traffic flows, and holding the ledger to them."""
import argparse
import datetime
import json
import os
import stat
import threading
import time
from decimal import Decimal

import falcon.testing
import pytest

from balance_api.config import Settings
from balance_api.discounts.models import DiscountAudit, DiscountBrand, DiscountCode
from balance_api.discounts.verify import verify_discounts
from balance_api.exports import checkpoints, signing
from balance_api.exports.checkpoints import Checkpoint, check_against, take_checkpoint
from balance_api.money.models import EXTERNAL_ACCOUNT_ID, Account, JournalEntry, Posting
from balance_api.money.verify import verify_ledger
from balance_api.points.verify import verify_points
from balance_api.storage.db import database
from gunicorn_server import bearer
from helpers import (AMOUNT_FORMAT, FORM, add, generation_held_open, rechain, send_json, transfer,
                     waits_for)


@pytest.fixture
def db(app):
    """The service's database, with no checkpoints stored (on PostgreSQL the
    table outlives a test)."""
    handle = database.obj
    with handle.connection_context():
        Checkpoint.delete().execute()
    return handle


@pytest.fixture
def key(tmp_path):
    path = tmp_path / 'signing.pem'
    signing.create_key_file(str(path))
    return signing.load_private_key(str(path))


@pytest.fixture
def other_key(tmp_path):
    path = tmp_path / 'other.pem'
    signing.create_key_file(str(path))
    return signing.load_private_key(str(path))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'audit' / 'checkpoints.jsonl')


@pytest.fixture(autouse=True)
def audit_directory(tmp_path):
    (tmp_path / 'audit').mkdir()


@pytest.fixture
def traffic(client, make_user):
    """Accounts 1 to 3 with money moved between them, and points for member 1."""
    make_user(1, '100.00')
    make_user(2, '50.00')
    make_user(3)

    def more(times=1):
        for _ in range(times):
            assert transfer(client, 1, 2, '10.01').status_code == 200
            assert transfer(client, 2, 3, '5').status_code == 200
            assert add(client, 3, '0.99').status_code == 200
            result = send_json(client, 'POST', '/points/1/add',
                               {'payer': 'DANNON', 'points': 30})
            assert result.status_code == 201, result.text
        result = send_json(client, 'POST', '/points/1/spend', {'points': 10})
        assert result.status_code == 200, result.text
    more()
    return more


def take(db, key, path):
    with db.connection_context():
        return take_checkpoint(db, key, path)


def check(db, path, public_key=None):
    with db.connection_context():
        return check_against(db, path, public_key)


def lines(path):
    with open(path, 'rb') as handle:
        return handle.read().split(b'\n')[:-1]


def write_lines(path, found):
    with open(path, 'wb') as handle:
        handle.write(b''.join(line + b'\n' for line in found))


# -- taking a checkpoint -------------------------------------------------------

def test_a_checkpoint_records_every_account_and_member_signed(db, key, path, traffic):
    record = take(db, key, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [line] = lines(path)
    assert json.loads(line) == record
    assert set(record) == {'format', 'sequence', 'taken_at', 'previous_line_sha256', 'totals',
                           'accounts', 'points_members', 'discount_brands', 'signature'}
    assert record['format'] == 'balance_api checkpoint 2'
    assert record['sequence'] == 1 and record['previous_line_sha256'] is None
    assert signing.verify(record, signing.public_key_text(key))
    with db.connection_context():
        accounts = {row.id: row for row in Account.select()}
        newest = {account_id: max(posting.id for posting in Posting.select()
                                  if posting.account_id == account_id)
                  for account_id in (1, 2, 3)}
        journal_max = max(entry.id for entry in JournalEntry.select())
        stored = list(Checkpoint.select().tuples())
    assert record['accounts'] == [
        {'id': account_id, 'balance': str(accounts[account_id].balance),
         'last_hash': accounts[account_id].last_hash, 'last_posting_id': newest[account_id]}
        for account_id in (1, 2, 3)]
    assert [account['balance'] for account in record['accounts']] == ['89.99', '55.01', '5.99']
    assert all(AMOUNT_FORMAT.fullmatch(account['balance']) for account in record['accounts'])
    assert record['totals'] == {'accounts': 3, 'balance_sum': '150.99',
                                'journal_max_id': journal_max, 'points_members': 1,
                                'points_sum': 20, 'points_entry_max_id': 2,
                                'discount_brands': 0, 'discount_audit_settled_id': 0}
    assert record['discount_brands'] == []
    [member] = record['points_members']
    assert member['member_id'] == 1 and member['last_entry_id'] == 2 and member['points'] == 20
    assert len(stored) == 1
    with db.connection_context():
        row = Checkpoint.get()
    assert row.record == line.decode('utf-8') and row.sequence == 1
    assert row.line_sha256 == checkpoints.line_hash(line)
    assert str(row.balance_sum) == '150.99' and row.accounts == 3


def test_records_chain_through_the_file(db, key, path, traffic):
    first = take(db, key, path)
    traffic()
    second = take(db, key, path)
    one, two = lines(path)
    assert second['sequence'] == 2
    assert second['previous_line_sha256'] == checkpoints.line_hash(one)
    assert first['taken_at'] <= second['taken_at']


def test_an_incomplete_last_line_is_cut_off_by_the_next_checkpoint(db, key, path, traffic):
    take(db, key, path)
    with open(path, 'ab') as handle:
        handle.write(b'{"format": "balance_api checkp')
    assert [problem.kind for problem in check(db, path)] == ['checkpoint file']
    warnings = []
    with db.connection_context():
        take_checkpoint(db, key, path, warn=warnings.append)
    assert len(warnings) == 1 and 'incomplete' in warnings[0]
    assert len(lines(path)) == 2
    assert check(db, path, signing.public_key_text(key)) == []


# -- the ledger extends its checkpoints ------------------------------------------

def test_traffic_after_a_checkpoint_passes(db, key, path, traffic):
    take(db, key, path)
    traffic(3)
    take(db, key, path)
    traffic()
    assert check(db, path, signing.public_key_text(key)) == []
    assert check(db, path) == []


def test_a_rewritten_past_is_caught_though_every_chain_was_recomputed(db, key, path, traffic):
    take(db, key, path)
    traffic()
    with db.connection_context():
        # Account 2's deposit of 50.00 becomes 500.00, on the entry and both legs.
        deposit = (JournalEntry.select().where((JournalEntry.operation == 'balance_add')
                                               & (JournalEntry.receiver_id == 2)).get())
        with db.atomic():
            JournalEntry.update(amount='500.00').where(JournalEntry.id == deposit.id).execute()
            Posting.update(amount='500.00').where((Posting.journal == deposit.id)
                                                  & (Posting.account == 2)).execute()
            Posting.update(amount='-500.00').where(
                (Posting.journal == deposit.id)
                & (Posting.account == EXTERNAL_ACCOUNT_ID)).execute()
        rechain(db)
        assert verify_ledger(db).ok and verify_points(db).ok
    problems = check(db, path, signing.public_key_text(key))
    assert [(problem.kind, problem.account_id) for problem in problems] == [
        ('checkpoint rewritten', 2)]
    [record] = [json.loads(line) for line in lines(path)]
    assert 'checkpoint 1 of %s' % record['taken_at'] in problems[0].detail
    assert problems[0].detail.startswith('account 2 posting ')


def test_an_edited_checkpointed_posting_that_keeps_its_hash_is_caught(db, key, path, traffic):
    record = take(db, key, path)
    newest = record['accounts'][0]['last_posting_id']
    with db.connection_context():
        JournalEntry.update(transaction_description='innocent').where(
            JournalEntry.id == Posting.get_by_id(newest).journal_id).execute()
    problems = check(db, path, signing.public_key_text(key))
    assert ('checkpoint rewritten', 1) in [(p.kind, p.account_id) for p in problems]
    assert any('no longer hash to it' in p.detail for p in problems)


def test_a_broken_chain_after_the_checkpoint_is_caught(db, key, path, traffic):
    take(db, key, path)
    traffic()
    with db.connection_context():
        newest = Posting.select().where(Posting.account == 3).order_by(Posting.id.desc()).get()
        Posting.update(hash='f' * 64).where(Posting.id == newest.id).execute()
    problems = check(db, path)
    assert [(p.kind, p.account_id) for p in problems] == [('checkpoint chain', 3)]


def test_a_checkpointed_account_and_member_that_are_gone_are_named(db, key, path, traffic):
    take(db, key, path)
    with db.connection_context(), db.atomic():
        db.execute_sql('DELETE FROM posting WHERE account_id = 3')
        db.execute_sql('DELETE FROM account WHERE id = 3')
        db.execute_sql('DELETE FROM points_member WHERE member_id = 1')
    found = [(p.kind, p.account_id) for p in check(db, path)]
    assert ('checkpoint gone', 3) in found and ('checkpoint gone', 1) in found
    assert all('no longer exists' in p.detail for p in check(db, path))


def test_a_rewritten_points_entry_is_caught(db, key, path, traffic):
    from balance_api.points.models import PointsEntry
    take(db, key, path)
    with db.connection_context():
        PointsEntry.update(hash='e' * 64).where(PointsEntry.id == 2).execute()
    problems = check(db, path)
    assert [(p.kind, p.account_id) for p in problems] == [('checkpoint rewritten', 1)]
    assert problems[0].detail.startswith('points member 1 entry 2')


# -- discount codes ----------------------------------------------------------------

@pytest.fixture
def codes(client, traffic):
    """Brand 1 with 10 codes, users 1 and 2 holding one each; brand 2 with 5 codes."""
    def claim_for(uid, brand_id=1):
        answer = client.simulate_get('/discounts/%d/code' % brand_id,
                                     query_string='user_id=%d' % uid)
        assert answer.status_code == 200, answer.text
        return answer.json['code']
    generate(client, 1, 10)
    generate(client, 2, 5)
    claim_for(1)
    claim_for(2)
    return claim_for


def generate(client, brand_id, number):
    answer = client.simulate_post('/discounts/api/v1.0/generate',
                                  json={'brand_id': brand_id, 'number_of_codes': number})
    assert answer.status_code == 201, answer.text


def _audit_ids(db, brand_id):
    with db.connection_context():
        return [row.id for row in DiscountAudit.select().where(DiscountAudit.brand == brand_id)
                .order_by(DiscountAudit.id)]


def test_every_discount_brand_is_checkpointed(db, key, path, codes):
    record = take(db, key, path)
    first, second = record['discount_brands']
    ids = _audit_ids(db, 1)
    assert {name: first[name] for name in first if name != 'audit_sha256'} == {
        'brand_id': 1, 'last_audit_id': ids[-1], 'audit_rows': 3, 'generated': 10,
        'claimed': 2}
    assert (second['brand_id'], second['audit_rows'], second['generated'],
            second['claimed']) == (2, 1, 5, 0)
    assert len(first['audit_sha256']) == 64 and first['audit_sha256'] != second['audit_sha256']
    assert record['totals']['discount_brands'] == 2
    assert record['totals']['discount_audit_settled_id'] == max(ids[-1], _audit_ids(db, 2)[-1])
    codes(3)
    generate_more = take(db, key, path)['discount_brands'][0]
    assert (generate_more['audit_rows'], generate_more['claimed']) == (4, 3)
    assert check(db, path, signing.public_key_text(key)) == []


def test_a_claim_removed_with_its_audit_row_passes_verify_and_fails_the_checkpoint(
        db, key, path, codes):
    take(db, key, path)
    codes(3)   # after the checkpoint: not what it pinned, but the rows it pinned must stay
    _unclaim(db, 1)
    with db.connection_context():
        assert verify_discounts(db).ok
    problems = check(db, path)
    assert [p.kind for p in problems] == ['checkpoint rewritten']
    assert problems[0].detail.startswith('discount brand 1 up to audit row ')
    assert 'audit_rows 2, claimed 1, audit_rows 3, claimed 2 in checkpoint 1' in \
        problems[0].detail


def test_a_claim_given_to_another_user_in_its_code_and_audit_row_is_caught(db, key, path,
                                                                            codes):
    take(db, key, path)
    with db.connection_context(), db.atomic():
        DiscountCode.update(user_id=4).where(
            (DiscountCode.brand == 1) & (DiscountCode.user_id == 2)).execute()
        DiscountAudit.update(user_id=4).where(
            (DiscountAudit.brand == 1) & (DiscountAudit.user_id == 2)).execute()
    with db.connection_context():
        assert verify_discounts(db).ok
    problems = check(db, path)
    assert [p.kind for p in problems] == ['checkpoint rewritten']
    assert 'are not the ones checkpoint 1' in problems[0].detail


def _unclaim(db, user_id, brand_id=1):
    """Undo a claim, its audit row and all (what a rolled-back claim leaves)."""
    with db.connection_context(), db.atomic():
        held = DiscountCode.get((DiscountCode.brand == brand_id) & (DiscountCode.user_id == user_id))
        DiscountCode.update(user_id=None, claim=None, claimed_at=None).where(
            DiscountCode.id == held.id).execute()
        DiscountAudit.delete().where(DiscountAudit.id == held.claim_id).execute()
        return held.claim_id


def test_a_row_added_under_an_old_id_is_caught(db, key, path, codes):
    codes(3)
    gap = _unclaim(db, 3)   # an id no row has, as a rolled-back claim leaves on PostgreSQL
    codes(3)
    record = take(db, key, path)
    assert record['totals']['discount_audit_settled_id'] == gap + 1
    second = record['discount_brands'][1]
    assert second['brand_id'] == 2 and second['last_audit_id'] < gap
    with db.connection_context(), db.atomic():
        # A claim of brand 2 for user 1, written under the free id, before the checkpoint.
        code = DiscountCode.select().where((DiscountCode.brand == 2)
                                           & DiscountCode.user_id.is_null()).first()
        DiscountAudit.insert(id=gap, created_at=datetime.datetime(2020, 1, 1), action='claim',
                             brand=2, codes=1, code=code.code, user_id=1).execute()
        DiscountCode.update(user_id=1, claim=gap, claimed_at=datetime.datetime(2020, 1, 1)).where(
            DiscountCode.id == code.id).execute()
    with db.connection_context():
        assert verify_discounts(db).ok
    problems = check(db, path)
    assert [p.kind for p in problems] == ['checkpoint rewritten']
    assert problems[0].detail.startswith(
        'discount brand 2 has audit row %d, after its newest in checkpoint 1 of %s (%d)'
        % (gap, record['taken_at'], second['last_audit_id']))


@pytest.mark.parametrize('database_url', ['postgresql'], indirect=True)
def test_an_audit_row_committed_after_a_checkpoint_under_a_smaller_id_is_waited_for(
        db, key, path, codes, client):
    """PostgreSQL hands out audit ids before commit: a generation takes its id
    first and commits last. A checkpoint taken meanwhile waits for it, so a
    smaller id committed after the checkpoint cannot pass under it."""
    with generation_held_open(db, 1, 5):
        codes(3)                       # a claim takes a larger id and commits first
        checkpointing, taken = waits_for(lambda: take(db, key, path))
        assert checkpointing.is_alive(), 'the checkpoint did not wait for the generation'
    checkpointing.join(30)
    assert taken
    [first] = [b for b in taken[0]['discount_brands'] if b['brand_id'] == 1]
    assert (first['audit_rows'], first['generated'], first['claimed']) == (5, 15, 3)
    assert check(db, path) == []


def test_a_checkpointed_brands_newest_audit_row_that_is_gone_is_named(db, key, path, codes):
    record = take(db, key, path)
    newest = record['discount_brands'][1]['last_audit_id']
    with db.connection_context(), db.atomic():
        DiscountCode.delete().where(DiscountCode.brand == 2).execute()
        DiscountAudit.delete().where(DiscountAudit.id == newest).execute()
        DiscountBrand.delete().where(DiscountBrand.id == 2).execute()
    with db.connection_context():
        assert verify_discounts(db).ok
    details = [(p.kind, p.detail) for p in check(db, path)]
    assert ('checkpoint gone', 'discount brand 2: audit row %d, its newest in checkpoint 1 of '
            '%s, no longer exists (or now belongs to another brand)'
            % (newest, record['taken_at'])) in details


def test_a_record_from_before_discounts_were_checkpointed_is_still_checked(db, key, path,
                                                                           codes, traffic):
    record = take(db, key, path)
    document = {name: value for name, value in record.items()
                if name not in ('signature', 'discount_brands')}
    document['format'] = 'balance_api checkpoint 1'
    document['totals'] = {name: value for name, value in record['totals'].items()
                          if not name.startswith('discount_')}
    older = signing.sign(key, document)
    line = signing.canonical(older)
    write_lines(path, [line])
    with db.connection_context():
        Checkpoint.delete().execute()
        checkpoints._store(db, older, line)
    traffic()
    assert check(db, path) == []
    with db.connection_context():
        DiscountAudit.update(user_id=4).where(DiscountAudit.user_id == 2).execute()
    assert check(db, path) == []   # format 1 pinned no discount codes
    with db.connection_context():
        Posting.update(hash='f' * 64).where(
            Posting.id == record['accounts'][2]['last_posting_id']).execute()
    assert 'checkpoint rewritten' in [p.kind for p in check(db, path)]


# -- the file's own integrity ----------------------------------------------------

def test_a_forged_line_fails_the_signature_check(db, key, other_key, path, traffic):
    take(db, key, path)
    take(db, key, path)
    one, two = lines(path)
    forged = json.loads(two)
    del forged['signature']
    forged['accounts'][0]['balance'] = '1000000.00'
    forged = signing.sign(other_key, forged)
    write_lines(path, [one, signing.canonical(forged)])
    real, fake = signing.public_key_text(key), signing.public_key_text(other_key)
    problems = check(db, path, real)
    signature = [p for p in problems if p.kind == 'checkpoint signature']
    assert len(signature) == 1
    assert signature[0].detail == (
        'checkpoint 2 of %s: the signature is not valid for the given public key %s; it names '
        'the key %s' % (forged['taken_at'], real, fake))
    assert ('checkpoint balance', 1) in [(p.kind, p.account_id) for p in problems]
    # Each record checked with the key it names: the change of key is the finding.
    problems = check(db, path)
    assert [p.kind for p in problems if p.kind == 'checkpoint signature'] == [
        'checkpoint signature']
    assert fake in problems[0].detail and real in problems[0].detail


def test_an_edited_line_fails_its_signature(db, key, path, traffic):
    take(db, key, path)
    [line] = lines(path)
    edited = json.loads(line)
    edited['accounts'][1]['balance'] = '0.01'
    write_lines(path, [signing.canonical(edited)])
    kinds = [p.kind for p in check(db, path, signing.public_key_text(key))]
    assert 'checkpoint signature' in kinds


def test_a_deleted_middle_line_breaks_the_file_chain(db, key, path, traffic):
    for _ in range(3):
        take(db, key, path)
        traffic()
    one, two, three = lines(path)
    write_lines(path, [one, three])
    problems = check(db, path, signing.public_key_text(key))
    third = json.loads(three)
    assert [p.kind for p in problems] == ['checkpoint file chain', 'checkpoint database']
    assert problems[0].detail.startswith('checkpoint 3 of %s (line 2 of ' % third['taken_at'])
    assert 'not the hash of line 1' in problems[0].detail
    assert 'checkpoint 2 of' in problems[1].detail and 'not in the file' in problems[1].detail


def test_a_deleted_last_line_is_seen_from_the_table(db, key, path, traffic):
    take(db, key, path)
    take(db, key, path)
    write_lines(path, lines(path)[:1])
    problems = check(db, path)
    assert [p.kind for p in problems] == ['checkpoint database']


# -- the command -----------------------------------------------------------------

def _command():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest='command', required=True)
    handlers = checkpoints.add_checkpoint_command(commands)
    assert set(handlers) == {'checkpoint'}
    return parser, handlers['checkpoint']


def test_the_command_refuses_without_a_signing_key(database_url, db, path, capsys, tmp_path):
    parser, handler = _command()
    args = parser.parse_args(['checkpoint', '--file', path])
    for key_file in ('', str(tmp_path / 'missing.pem')):
        assert handler(Settings(database_url=database_url, signing_key_file=key_file),
                       args) == 2
        captured = capsys.readouterr()
        assert captured.out == ''
        assert captured.err.count('\n') == 1
        assert captured.err.startswith('balance_api: error: checkpoint: ')
    assert not os.path.exists(path)
    with db.connection_context():
        assert Checkpoint.select().count() == 0


def test_the_command_appends_and_prints_one_line(database_url, db, traffic, path, capsys,
                                                 tmp_path, monkeypatch):
    key_file = str(tmp_path / 'command.pem')
    public = signing.create_key_file(key_file)
    parser, handler = _command()
    settings = Settings(database_url=database_url, signing_key_file=key_file)
    assert handler(settings, parser.parse_args(['checkpoint', '--file', path])) == 0
    out = capsys.readouterr().out
    assert out.count('\n') == 1 and out.startswith('checkpoint 1 at ')
    assert '3 accounts holding 150.99' in out and path in out
    monkeypatch.setenv('CHECKPOINT_FILE', path)
    assert handler(settings, parser.parse_args(['checkpoint'])) == 0
    assert capsys.readouterr().out.startswith('checkpoint 2 at ')
    assert check(database.obj, path, public) == []


def test_the_command_reports_a_file_it_cannot_write(database_url, db, tmp_path, capsys):
    key_file = str(tmp_path / 'command.pem')
    signing.create_key_file(key_file)
    parser, handler = _command()
    args = parser.parse_args(['checkpoint', '--file', str(tmp_path / 'nowhere' / 'c.jsonl')])
    assert handler(Settings(database_url=database_url, signing_key_file=key_file), args) == 1
    # After the line naming the database, one line: the refusal.
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith('balance_api: database ')
    assert len(err) == 2 and 'cannot open' in err[1]


# -- while traffic flows -----------------------------------------------------------

def test_checkpoints_taken_while_eight_threads_transfer_pass(db, key, path, app, admin_token,
                                                             make_user):
    users = list(range(1, 9))
    for uid in users:
        make_user(uid, '1000.00')
    stop = threading.Event()
    failures = []
    counts = []
    moved = []  # one item per transfer answered, from every thread

    def after_more_transfers(how_many):
        target = len(moved) + how_many
        while len(moved) < target and not failures and len(counts) < 8:
            time.sleep(0.005)

    def transfers(offset):
        client = falcon.testing.TestClient(app, headers=bearer(admin_token))
        done = 0
        try:
            while not stop.is_set() or done < 20:
                sender = users[(offset + done) % len(users)]
                receiver = users[(offset + done + 1 + offset % 3) % len(users)]
                result = client.simulate_put(
                    '/transfer', headers=FORM,
                    body='sender_id=%d&receiver_id=%d&balance=1.%02d'
                         % (sender, receiver, done % 100))
                if result.status_code not in (200, 409):
                    failures.append(result.text)
                moved.append(1)
                done += 1
        except Exception as exc:  # reported below, not lost in the thread
            failures.append(repr(exc))
        finally:
            counts.append(done)

    threads = [threading.Thread(target=transfers, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    try:
        taken = []
        for _ in range(3):
            after_more_transfers(20)
            taken.append(take(db, key, path))
        after_more_transfers(20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(counts) == 8 and sum(counts) >= 160
    assert [record['sequence'] for record in taken] == [1, 2, 3]
    # Transfers committed between the checkpoints, and after the last one.
    reached = [record['totals']['journal_max_id'] for record in taken]
    assert reached == sorted(set(reached))
    with db.connection_context():
        assert JournalEntry.select().order_by(JournalEntry.id.desc()).get().id > reached[-1]
    with db.connection_context():
        assert verify_ledger(db).ok
    for record in taken:
        total = sum(Decimal(account['balance']) for account in record['accounts'])
        assert total == Decimal('8000.00')
        assert record['totals']['balance_sum'] == '8000.00'
    assert check(db, path, signing.public_key_text(key)) == []


def test_verify_with_checkpoints_fails_a_rewritten_past_that_plain_verify_passes(
        database_url, db, traffic, path, tmp_path, monkeypatch, capsys):
    from balance_api import __main__ as command_line
    key_file = str(tmp_path / 'cron.pem')
    public = signing.create_key_file(key_file)
    monkeypatch.setenv('DATABASE_URL', database_url)
    monkeypatch.setenv('SIGNING_KEY_FILE', key_file)
    assert command_line.main(['checkpoint', '--file', path]) == 0
    # The command bound the models to a database of its own: back to the service's.
    database.initialize(db)
    traffic()
    with db.connection_context():
        deposit = (JournalEntry.select().where((JournalEntry.operation == 'balance_add')
                                               & (JournalEntry.receiver_id == 2)).get())
        with db.atomic():
            Posting.update(amount='49.00').where((Posting.journal == deposit.id)
                                                 & (Posting.account == 2)).execute()
            Posting.update(amount='-49.00').where(
                (Posting.journal == deposit.id)
                & (Posting.account == EXTERNAL_ACCOUNT_ID)).execute()
            JournalEntry.update(amount='49.00').where(JournalEntry.id == deposit.id).execute()
        rechain(db)
    capsys.readouterr()
    assert command_line.main(['verify']) == 0
    assert capsys.readouterr().out.splitlines()[-1] == 'ledger OK'
    assert command_line.main(['verify', '--checkpoints', path, '--public-key', public]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith('PROBLEM checkpoint rewritten: account 2 ')]
    assert out[-2:] == ['checkpoints in %s: 1 problem(s)' % path, 'ledger BROKEN: 1 problem(s)']
