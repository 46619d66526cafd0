"""A short bank run under faults: worker kills, a PostgreSQL restart, client timeouts."""
import os

import pytest

from bank import BankConfig, postgres_cluster, run_bank
from conftest import REQUIRE_POSTGRES, _empty_postgres


@pytest.fixture
def bank_database_url(postgres_url):
    _empty_postgres(postgres_url)
    return postgres_url


def test_bank_invariants_hold_under_faults(bank_database_url):
    if postgres_cluster(bank_database_url) is None or os.geteuid() != 0:
        message = 'restarting PostgreSQL needs the local cluster (pg_ctlcluster) and root'
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    config = BankConfig(duration=20, clients=32, readers=4, accounts=8, workers=4,
                        kill_workers=True, postgres_restarts=1, client_timeouts=True)
    run, results, elapsed = run_bank(bank_database_url, config)
    summary = run.summary(results, elapsed)
    print(summary)
    assert run.tally.faults['PostgreSQL restarted'] == 1, summary
    assert run.tally.faults['worker killed (kill -9)'] > 0, summary
    assert all(ok for _, ok, _ in results), summary
