"""A short points bank run under faults: worker kills, a PostgreSQL restart, client timeouts."""
from points_bank import PointsBankConfig, run_points_bank


def test_points_invariants_hold_under_faults(restartable_postgres_url):
    config = PointsBankConfig(duration=20, clients=16, readers=2, members=6, workers=4,
                              kill_workers=True, postgres_restarts=1, client_timeouts=True)
    run, results, elapsed = run_points_bank(restartable_postgres_url, config)
    summary = run.summary(results, elapsed)
    print(summary)
    assert run.tally.faults['PostgreSQL restarted'] == 1, summary
    assert run.tally.faults['worker killed (kill -9)'] > 0, summary
    assert all(ok for _, ok, _ in results), summary
    # Both kinds of answer were met: the workload exercised refusals, not only successes.
    kinds = {(op.kind, op.status) for op in run.operations}
    assert {('spend', 200), ('spend', 409), ('batch', 200), ('correction', 409)} <= kinds, summary
