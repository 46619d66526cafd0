"""Signed checkpoints of the ledgers, as ``python -m balance_api checkpoint`` takes them.

- ``checkpoint``: one row per checkpoint appended to the checkpoint file
  (``balance_api.exports.checkpoints``), so an operator can list them with
  SQL: when it was taken, its totals, the key that signed it, the SHA-256
  of its line in the file (and of the line before it) and the whole signed
  record. The file, kept outside the database, is what a check trusts; the
  table lets a check notice a line removed from the file.
"""
from peewee import SqliteDatabase

CHECKPOINT_TABLE = """
CREATE TABLE checkpoint (
    id {id_type},
    sequence BIGINT NOT NULL,
    taken_at {timestamp} NOT NULL,
    line_sha256 VARCHAR(64) NOT NULL UNIQUE,
    previous_line_sha256 VARCHAR(64),
    accounts BIGINT NOT NULL,
    balance_sum {money} NOT NULL,
    journal_max_id BIGINT,
    points_members BIGINT NOT NULL,
    points_sum BIGINT NOT NULL,
    points_entry_max_id BIGINT,
    public_key VARCHAR(64) NOT NULL,
    record TEXT NOT NULL
)"""


def up(migrator, db):
    sqlite = isinstance(db, SqliteDatabase)
    db.execute_sql(CHECKPOINT_TABLE.format(
        id_type='INTEGER PRIMARY KEY AUTOINCREMENT' if sqlite else 'BIGSERIAL PRIMARY KEY',
        timestamp='DATETIME' if sqlite else 'TIMESTAMP',
        # Amounts are text on SQLite (see balance_api.money.amounts.MoneyField).
        money='TEXT' if sqlite else 'NUMERIC(19, 2)'))
    db.execute_sql('CREATE INDEX checkpoint_taken_at ON checkpoint (taken_at)')


def down(migrator, db):
    db.execute_sql('DROP TABLE checkpoint')
