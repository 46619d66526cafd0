"""History by uid in journal id order: an index on posting (account_id, journal_id).

A uid's history is its account's postings in journal id order, after an id
and up to a limit. Through (account_id, created_at) alone the planner had to
sort all of an account's postings, or walk the journal in id order and join
the account's postings to it, and on a large journal it often chose to read
the whole journal (see ``balance_api.money.pg_sql.history``). With this index
the account's postings come in the order asked for, bounded by the ids, and
the scan stops at the limit; it holds both columns the query reads of a
posting without dates, so on PostgreSQL that scan need not visit the table.
The (account_id, created_at) index stays: it reads a date range's postings.
"""

INDEX = 'CREATE INDEX posting_account_id_journal_id ON posting (account_id, journal_id)'


def up(migrator, db):
    db.execute_sql(INDEX)


def down(migrator, db):
    db.execute_sql('DROP INDEX posting_account_id_journal_id')
