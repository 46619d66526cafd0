"""A short points bank run under faults: worker kills, a PostgreSQL restart, client timeouts."""
import os

import pytest

from bank import postgres_cluster
from conftest import REQUIRE_POSTGRES, _empty_postgres
from points_bank import PointsBankConfig, run_points_bank


@pytest.fixture
def points_bank_database_url(postgres_url):
    _empty_postgres(postgres_url)
    return postgres_url


def test_points_invariants_hold_under_faults(points_bank_database_url):
    if postgres_cluster(points_bank_database_url) is None or os.geteuid() != 0:
        message = 'restarting PostgreSQL needs the local cluster (pg_ctlcluster) and root'
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    config = PointsBankConfig(duration=20, clients=16, readers=2, members=6, workers=4,
                              kill_workers=True, postgres_restarts=1, client_timeouts=True)
    run, results, elapsed = run_points_bank(points_bank_database_url, config)
    summary = run.summary(results, elapsed)
    print(summary)
    assert run.tally.faults['PostgreSQL restarted'] == 1, summary
    assert run.tally.faults['worker killed (kill -9)'] > 0, summary
    assert all(ok for _, ok, _ in results), summary
    # Both kinds of answer were met: the workload exercised refusals, not only successes.
    kinds = {(op.kind, op.status) for op in run.operations}
    assert {('spend', 200), ('spend', 409), ('batch', 200), ('correction', 409)} <= kinds, summary
