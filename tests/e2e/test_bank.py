"""A short bank run under faults: worker kills, a PostgreSQL restart, client timeouts."""
from bank import BankConfig, run_bank


def test_bank_invariants_hold_under_faults(restartable_postgres_url):
    config = BankConfig(duration=20, clients=32, readers=4, accounts=8, workers=4,
                        kill_workers=True, postgres_restarts=1, client_timeouts=True)
    run, results, elapsed = run_bank(restartable_postgres_url, config)
    summary = run.summary(results, elapsed)
    print(summary)
    assert run.tally.faults['PostgreSQL restarted'] == 1, summary
    assert run.tally.faults['worker killed (kill -9)'] > 0, summary
    assert all(ok for _, ok, _ in results), summary
