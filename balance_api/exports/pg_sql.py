"""The exports' own statements on PostgreSQL.

Everything else an export reads is built with the models and runs on both
databases; these are the few PostgreSQL-only statements around it.
"""

# The whole export (rows and manifest figures) reads one snapshot and writes nothing.
READ_ONLY_SNAPSHOT = 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY'

# The first statement of the snapshot: the snapshot is taken as it starts,
# and it reads the server's clock then.
SNAPSHOT_TIME = "SELECT clock_timestamp() AT TIME ZONE 'UTC'"


def begin_snapshot(db):
    """Make the open transaction a read-only snapshot; returns its time (naive UTC).

    Call it first in the transaction (``SET TRANSACTION`` must precede any
    query).
    """
    db.execute_sql(READ_ONLY_SNAPSHOT)
    return db.execute_sql(SNAPSHOT_TIME).fetchone()[0]
