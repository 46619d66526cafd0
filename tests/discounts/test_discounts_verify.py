"""verify checks the discount codes: every tampering below is caught and named, and a
service-written state passes; the command line reports it with the ledgers."""
import subprocess
import sys

import pytest

import discounts_helpers
from balance_api.discounts.verify import verify_discounts
from balance_api.storage.db import database
from conftest import ROOT
from discounts_helpers import claim, make_users
from helpers import assert_ok


@pytest.fixture
def claimed(client, anonymous, make_user):
    """Brand 1 with 5 codes, users 1 and 2 holding one each; brand 2 with 2 codes.
    ``{uid: code}``."""
    users = make_users(make_user, (1, 2, 3))
    discounts_helpers.generate(client, 1, 5)
    discounts_helpers.generate(client, 2, 2)
    return {uid: assert_ok(claim(anonymous, uid, users[uid], 1))['data'] for uid in (1, 2)}


# The unique indexes a test drops to tamper past them, and how they are made again.
INDEXES = {
    'discount_code_brand_code': 'CREATE UNIQUE INDEX discount_code_brand_code '
                                'ON discount_code (brand_id, code)',
    'discount_code_brand_user': 'CREATE UNIQUE INDEX discount_code_brand_user '
                                'ON discount_code (brand_id, user_id) WHERE user_id IS NOT NULL',
}


@pytest.fixture
def drop_index():
    """Drop a unique index for one test; afterwards the tables are emptied and it is
    made again (the PostgreSQL database serves the whole session)."""
    dropped = []

    def drop(name):
        _sql('DROP INDEX %s' % name)
        dropped.append(name)
    yield drop
    for name in dropped:
        _sql('DELETE FROM discount_code')
        _sql(INDEXES[name])


def _sql(statement, params=()):
    with database.connection_context():
        database.obj.execute_sql(statement, params)


def _param():
    # The driver's placeholder.
    return '?' if 'sqlite' in type(database.obj).__name__.lower() else '%s'


def _problems():
    with database.connection_context():
        report = verify_discounts(database.obj)
    return report, sorted((found.kind, found.detail) for found in report.problems)


def _unclaimed_code(brand_id=1):
    with database.connection_context():
        return database.obj.execute_sql(
            'SELECT id, code FROM discount_code WHERE brand_id = %s AND user_id IS NULL '
            'ORDER BY id LIMIT 1' % brand_id).fetchone()


def _claim_row(code):
    with database.connection_context():
        return database.obj.execute_sql(
            'SELECT id FROM discount_audit WHERE code = %s' % _param(), (code,)).fetchone()[0]


def test_a_written_state_passes(claimed):
    report, problems = _problems()
    assert problems == [] and report.ok
    assert (report.brands, report.codes, report.claimed, report.audit_rows) == (2, 7, 2, 4)


def test_a_code_moved_to_another_user(claimed):
    p = _param()
    _sql('UPDATE discount_code SET user_id = 3 WHERE code = %s' % p, (claimed[1],))
    report, problems = _problems()
    assert [kind for kind, _ in problems] == ['discount claim']
    assert 'went to user 3, but its claim' in problems[0][1] and 'to user 1' in problems[0][1]


def test_a_claim_redated_behind_its_audit_row(claimed):
    p = _param()
    _sql("UPDATE discount_code SET claimed_at = '2020-01-02 03:04:05' WHERE code = %s" % p,
         (claimed[1],))
    _, problems = _problems()
    assert [kind for kind, _ in problems] == ['discount claim']
    assert problems[0][1].startswith('code %d (%s) of brand 1 was claimed at 2020-01-02 03:04:05'
                                     ', but its claim %d is dated '
                                     % (_code_id(claimed[1]), claimed[1], _claim_row(claimed[1])))


def test_a_claim_whose_audit_row_is_gone(claimed):
    row = _claim_row(claimed[2])
    _sql('DELETE FROM discount_audit WHERE id = %d' % row)
    _, problems = _problems()
    assert problems == [('discount claim', 'code %d (%s) of brand 1 is claimed by audit row %d, '
                         'which does not exist' % (_code_id(claimed[2]), claimed[2], row))]


def _code_id(code):
    with database.connection_context():
        return database.obj.execute_sql('SELECT id FROM discount_code WHERE code = %s'
                                        % _param(), (code,)).fetchone()[0]


def test_a_claim_undone_behind_its_audit_row(claimed):
    row = _claim_row(claimed[1])
    _sql('UPDATE discount_code SET user_id = NULL, claim_id = NULL, claimed_at = NULL '
         'WHERE code = %s' % _param(), (claimed[1],))
    _, problems = _problems()
    assert problems == [('discount claim', 'audit row %d gave code %s of brand 1 to user 1, but '
                         'no code is claimed by it' % (row, claimed[1]))]


def test_a_code_stored_twice(claimed, drop_index):
    drop_index('discount_code_brand_code')
    _, code = _unclaimed_code()
    _sql('INSERT INTO discount_code (brand_id, code, generation_id) SELECT brand_id, code, '
         'generation_id FROM discount_code WHERE code = %s' % _param(), (code,))
    _, problems = _problems()
    kinds = [kind for kind, _ in problems]
    assert kinds == ['discount duplicate code', 'discount generation'], problems
    assert 'has code %s 2 times' % code in problems[0][1]
    assert problems[1][1].endswith('made 5 codes, 6 name it')


def test_a_generation_that_says_more_than_it_made(claimed):
    _sql("UPDATE discount_audit SET codes = 9 WHERE action = 'generate' AND brand_id = 2")
    _, problems = _problems()
    assert [kind for kind, _ in problems] == ['discount generation']
    assert problems[0][1].endswith('of brand 2 made 9 codes, 2 name it')


def test_a_code_of_no_generation_and_a_code_of_another_shape(claimed):
    code_id, _ = _unclaimed_code(2)
    _sql('UPDATE discount_code SET generation_id = 999 WHERE id = %d' % code_id)
    other_id, _ = _unclaimed_code(1)
    _sql("UPDATE discount_code SET code = 'ABCDEFG0' WHERE id = %d" % other_id)
    _, problems = _problems()
    assert ('discount code', "code %d of brand 1 is 'ABCDEFG0', not a code this service draws"
            % other_id) in problems
    assert ('discount generation', 'code %d of brand 2 names generation 999, which does not '
            'exist' % code_id) in problems
    assert len(problems) == 3  # and brand 2's generation now counts one code fewer


def test_a_user_holding_two_codes(claimed, drop_index):
    drop_index('discount_code_brand_user')
    code_id, code = _unclaimed_code()
    p = _param()
    _sql("INSERT INTO discount_audit (created_at, action, brand_id, codes, code, user_id) "
         "VALUES ('2026-01-01 00:00:00', 'claim', 1, 1, %s, 1)" % p, (code,))
    _sql("UPDATE discount_code SET user_id = 1, claimed_at = '2026-01-01 00:00:00', "
         'claim_id = (SELECT MAX(id) FROM discount_audit) WHERE id = %d' % code_id)
    _, problems = _problems()
    assert [kind for kind, _ in problems] == ['discount user holds two'] * 2
    assert any('user 1 holds 2 codes of brand 1' in detail for _, detail in problems)
    assert any('user 1 claimed 2 codes of brand 1' in detail for _, detail in problems)


def test_a_code_claimed_twice_in_the_audit(claimed):
    p = _param()
    _sql("INSERT INTO discount_audit (created_at, action, brand_id, codes, code, user_id) "
         "VALUES (CURRENT_TIMESTAMP, 'claim', 1, 1, %s, 3)" % p, (claimed[1],))
    _, problems = _problems()
    assert [kind for kind, _ in problems] == ['discount claim', 'discount claimed twice']
    assert 'code %s of brand 1 was claimed 2 times' % claimed[1] in problems[1][1]


def test_the_command_line_reports_discount_problems(claimed, database_url):
    env = {'DATABASE_URL': database_url, 'PATH': '/usr/bin:/bin'}
    command = [sys.executable, '-m', 'balance_api', 'verify']
    passed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert 'discount brands: 2, codes: 7, claimed: 2, audit rows: 4' in passed.stdout
    _sql('UPDATE discount_code SET user_id = 3 WHERE code = %s' % _param(), (claimed[1],))
    failed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert failed.returncode == 1
    assert 'PROBLEM discount claim: code ' in failed.stdout
    assert failed.stdout.rstrip().endswith('ledger BROKEN: 1 problem(s)')
    stats = subprocess.run([sys.executable, '-m', 'balance_api', 'discounts-stats'], cwd=ROOT,
                           env=env, capture_output=True, text=True)
    assert stats.returncode == 0 and stats.stdout.splitlines() == [
        'brand  generated  claimed  remaining', '    1          5        2          3',
        '    2          2        0          2']
