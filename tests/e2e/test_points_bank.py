"""A short points bank run under faults: worker kills, client timeouts, and a
PostgreSQL restart where the run may restart the server
(BALANCE_API_TEST_RESTART_POSTGRES=1, as in CI: it interrupts everyone using it)."""
from points_bank import PointsBankConfig, run_points_bank


def _points_invariants_hold(database_url, postgres_restarts):
    config = PointsBankConfig(duration=20, clients=16, readers=2, members=6, workers=4,
                              kill_workers=True, postgres_restarts=postgres_restarts,
                              client_timeouts=True)
    run, results, elapsed = run_points_bank(database_url, config)
    summary = run.summary(results, elapsed)
    print(summary)
    assert run.tally.faults['PostgreSQL restarted'] == postgres_restarts, summary
    assert run.tally.faults['worker killed (kill -9)'] > 0, summary
    assert all(ok for _, ok, _ in results), summary
    # Both kinds of answer were met: the workload exercised refusals, not only successes.
    kinds = {(op.kind, op.status) for op in run.operations}
    assert {('spend', 200), ('spend', 409), ('batch', 200), ('correction', 409)} <= kinds, summary


def test_points_invariants_hold_under_faults(bank_postgres):
    _points_invariants_hold(*bank_postgres)
