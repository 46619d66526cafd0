"""A short bank run under faults: worker kills, client timeouts, and a
PostgreSQL restart where the run may restart the server
(BALANCE_API_TEST_RESTART_POSTGRES=1, as in CI: it interrupts everyone using it)."""
from bank import BankConfig, run_bank


def _bank_invariants_hold(database_url, postgres_restarts):
    config = BankConfig(duration=20, clients=32, readers=4, accounts=8, workers=4,
                        kill_workers=True, postgres_restarts=postgres_restarts,
                        client_timeouts=True)
    run, results, elapsed = run_bank(database_url, config)
    summary = run.summary(results, elapsed)
    print(summary)
    assert run.tally.faults['PostgreSQL restarted'] == postgres_restarts, summary
    assert run.tally.faults['worker killed (kill -9)'] > 0, summary
    assert all(ok for _, ok, _ in results), summary


def test_bank_invariants_hold_under_faults(bank_postgres):
    _bank_invariants_hold(*bank_postgres)
