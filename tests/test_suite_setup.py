"""The suite's own set-up: which PostgreSQL it uses, what its summary says
about it, and that it restarts the server only when asked to."""
import os
import subprocess
import sys
import uuid

from conftest import (PG_URL, RESTART_POSTGRES_VARIABLE, ROOT, _shown, _with_database,
                      postgres_restart_refusal)

# A quick test that runs once on each database.
ON_BOTH_DATABASES = ('tests/money/test_api_users.py::'
                     'test_create_user_answers_201_with_zero_balance')


def _run_suite(*args, **environment):
    """pytest in a process of its own, with only the settings given here."""
    inherited = {name: value for name, value in os.environ.items()
                 if name not in ('TEST_DATABASE_URL', 'BALANCE_API_REQUIRE_POSTGRES',
                                 RESTART_POSTGRES_VARIABLE)}
    return subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', *args],
                          cwd=ROOT, env={**inherited, **environment}, capture_output=True,
                          text=True, timeout=300)


# -- which server, and the summary --------------------------------------------

def test_without_a_server_the_summary_says_the_postgres_half_was_skipped():
    nowhere = 'postgresql://postgres@127.0.0.1:1/test'
    result = _run_suite(ON_BOTH_DATABASES, TEST_DATABASE_URL=nowhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1 passed, 1 skipped' in result.stdout, result.stdout
    assert ('PostgreSQL: 0 tests ran - no server at postgresql://postgres@127.0.0.1:1, '
            'the PostgreSQL half was SKIPPED') in result.stdout, result.stdout


def test_without_a_server_but_required_the_summary_says_the_postgres_half_errored():
    nowhere = 'postgresql://postgres@127.0.0.1:1'
    result = _run_suite(ON_BOTH_DATABASES, TEST_DATABASE_URL=nowhere,
                        BALANCE_API_REQUIRE_POSTGRES='1')
    assert result.returncode != 0, result.stdout
    assert '1 passed, 1 error' in result.stdout, result.stdout
    assert ('PostgreSQL: 0 tests ran - no server at postgresql://postgres@127.0.0.1:1, '
            'the PostgreSQL half ERRORED (BALANCE_API_REQUIRE_POSTGRES=1)') in result.stdout


def test_a_server_without_the_named_database_still_runs_the_postgres_half(postgres_url):
    # Before, the suite connected to the database the URL names (by default
    # "test") to create its own, and skipped everything when it was missing.
    missing = _with_database(PG_URL, 'balance_api_missing_%s' % uuid.uuid4().hex[:12])
    result = _run_suite(ON_BOTH_DATABASES, TEST_DATABASE_URL=missing,
                        BALANCE_API_REQUIRE_POSTGRES='1')
    assert result.returncode == 0, result.stdout + result.stderr
    assert '2 passed' in result.stdout, result.stdout
    assert ('PostgreSQL: 1 test ran against %s (BALANCE_API_REQUIRE_POSTGRES=1)'
            % _shown(missing)) in result.stdout, result.stdout


def test_the_summary_names_the_server_without_its_password_or_database():
    assert _shown('postgresql://ann:secret@db.example.com:6543/test?sslmode=require') == (
        'postgresql://ann@db.example.com:6543')
    assert _shown('postgresql://[::1]:5432/postgres') == 'postgresql://[::1]:5432'


# -- restarting PostgreSQL is opt-in ---------------------------------------------

def test_restarting_postgres_needs_the_opt_in_variable(monkeypatch):
    monkeypatch.delenv(RESTART_POSTGRES_VARIABLE, raising=False)
    refusal = postgres_restart_refusal()
    assert refusal is not None and RESTART_POSTGRES_VARIABLE + '=1' in refusal
    for not_yes in ('0', '', 'yes', 'true'):
        monkeypatch.setenv(RESTART_POSTGRES_VARIABLE, not_yes)
        assert postgres_restart_refusal() is not None, not_yes
    monkeypatch.setenv(RESTART_POSTGRES_VARIABLE, '1')
    assert postgres_restart_refusal() is None


def test_ci_opts_in_before_it_runs_the_tests():
    with open(os.path.join(ROOT, '.ci', 'run'), encoding='utf-8') as handle:
        lines = [line.strip() for line in handle]
    opt_in = lines.index('export %s=1' % RESTART_POSTGRES_VARIABLE)
    runs_tests = next(number for number, line in enumerate(lines) if '-m pytest' in line)
    assert opt_in < runs_tests
