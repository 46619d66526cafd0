"""Record the writing transaction of each journal entry (PostgreSQL).

Journal ids come from a sequence, handed out in insert order, not commit
order: while an earlier id is still uncommitted a later one can already be
read, and a client paging with after_id would step over the earlier row
for good. Paged history reads therefore return only rows whose writing
transaction is older than every transaction still running. SQLite commits
one writer at a time, in id order, and keeps the column empty.
"""
from peewee import SqliteDatabase


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        db.execute_sql('ALTER TABLE journal_entry ADD COLUMN txid INTEGER')
    else:
        db.execute_sql('ALTER TABLE journal_entry ADD COLUMN txid xid8 NOT NULL '
                       'DEFAULT pg_current_xact_id()')


def down(migrator, db):
    db.execute_sql('ALTER TABLE journal_entry DROP COLUMN txid')
