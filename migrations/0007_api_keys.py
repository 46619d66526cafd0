"""API keys with permits; every change names the key that made it; idempotency keys per API key.

- ``api_key``: a key's name, the SHA-256 of its token (never the token),
  its permits, the user it is bound to (if any), when it expires, when it
  was last used and when it was revoked.
- ``journal_entry.key_name`` and ``points_entry.key_name``: who made the
  change (NULL for changes made before keys existed, or with auth off).
- ``idempotency_record.owner``: the API key an Idempotency-Key belongs to,
  part of the primary key, so the same string from two API keys names two
  requests. Records stored before have the owner '' (nobody's).
- ``ledger_post`` and ``points_post`` take the key's name.
"""
import importlib.util
import os

from peewee import SqliteDatabase

API_KEY_TABLE = """
CREATE TABLE api_key (
    id {id_type},
    name VARCHAR(64) NOT NULL UNIQUE,
    token_hash VARCHAR(64) NOT NULL UNIQUE,
    permits TEXT NOT NULL,
    uid BIGINT,
    created_at {timestamp} NOT NULL,
    expires_on DATE,
    last_used_at {timestamp},
    revoked_at {timestamp}
)"""


def _load(name):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    spec = importlib.util.spec_from_file_location(name[:-3].replace('.', '_'), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace_once(text, old, new):
    if text.count(old) != 1:
        raise RuntimeError('migration 0007: %r is not found exactly once' % old)
    return text.replace(old, new)


def _ledger_post_with_key():
    text = _load('0004_settled_journal.py').LEDGER_POST
    text = _replace_once(text, '    description text,\n    OUT refusal',
                         '    description text, key_name text,\n    OUT refusal')
    text = _replace_once(text, '                               transaction_description)\n'
                               '    VALUES (journal_id, posted_at, operation, sender_id, '
                               'receiver_id, amount,\n            description);',
                         '                               transaction_description, key_name)\n'
                         '    VALUES (journal_id, posted_at, operation, sender_id, '
                         'receiver_id, amount,\n            description, key_name);')
    return text


def _points_post_with_key():
    text = _load('0006_points_post.py').POINTS_FUNCTIONS
    text = text[text.index('CREATE FUNCTION points_post('):]
    text = _replace_once(text, '    properties_json text, reported_json text, today date, '
                               'now timestamp)',
                         '    properties_json text, reported_json text, today date, '
                         'now timestamp,\n    key_name text)')
    # Both INSERTs of an entry: the grant's and each payer's taking entry.
    old_columns = 'store_id, receipt_id, properties, reported, created_at, hash)'
    new_columns = 'store_id, receipt_id, properties, reported, created_at, hash, key_name)'
    if text.count(old_columns) != 2:
        raise RuntimeError('migration 0007: points_post has not two entry INSERTs')
    text = text.replace(old_columns, new_columns)
    text = text.replace('properties_json, reported_json, now, chain_hash);',
                        'properties_json, reported_json, now, chain_hash, key_name);')
    if text.count('chain_hash, key_name);') != 2:
        raise RuntimeError('migration 0007: points_post values not rewritten')
    return text


_OLD_POINTS_POST = ('points_post(bigint, text, text, text, bigint, text, timestamp, date, text, '
                    'text, text, text, text, text, text, date, timestamp')


def up(migrator, db):
    sqlite = isinstance(db, SqliteDatabase)
    db.execute_sql(API_KEY_TABLE.format(
        id_type='INTEGER PRIMARY KEY AUTOINCREMENT' if sqlite else 'BIGSERIAL PRIMARY KEY',
        timestamp='DATETIME' if sqlite else 'TIMESTAMP'))
    db.execute_sql('CREATE INDEX api_key_uid ON api_key (uid) WHERE uid IS NOT NULL')
    db.execute_sql('ALTER TABLE journal_entry ADD COLUMN key_name VARCHAR(64)')
    db.execute_sql('ALTER TABLE points_entry ADD COLUMN key_name VARCHAR(64)')
    if sqlite:
        # SQLite cannot change a primary key in place: the table is rebuilt.
        db.execute_sql('CREATE TABLE idempotency_record_new (owner VARCHAR(64) NOT NULL, '
                       'key VARCHAR(255) NOT NULL, fingerprint VARCHAR(64) NOT NULL, '
                       'status INTEGER NOT NULL, body TEXT NOT NULL, '
                       'created_at DATETIME NOT NULL, PRIMARY KEY (owner, key))')
        db.execute_sql("INSERT INTO idempotency_record_new SELECT '', key, fingerprint, status, "
                       "body, created_at FROM idempotency_record")
        db.execute_sql('DROP TABLE idempotency_record')
        db.execute_sql('ALTER TABLE idempotency_record_new RENAME TO idempotency_record')
        db.execute_sql('CREATE INDEX idempotency_record_created_at '
                       'ON idempotency_record (created_at)')
        return
    db.execute_sql("ALTER TABLE idempotency_record ADD COLUMN owner VARCHAR(64) NOT NULL "
                   "DEFAULT ''")
    db.execute_sql('ALTER TABLE idempotency_record DROP CONSTRAINT idempotency_record_pkey')
    db.execute_sql('ALTER TABLE idempotency_record ADD PRIMARY KEY (owner, key)')
    db.execute_sql('DROP FUNCTION ledger_post(text, bigint, bigint, numeric, text)')
    db.execute_sql(_ledger_post_with_key())
    db.execute_sql('DROP FUNCTION %s)' % _OLD_POINTS_POST)
    db.execute_sql(_points_post_with_key())


def down(migrator, db):
    sqlite = isinstance(db, SqliteDatabase)
    db.execute_sql('DROP TABLE api_key')
    db.execute_sql('ALTER TABLE journal_entry DROP COLUMN key_name')
    db.execute_sql('ALTER TABLE points_entry DROP COLUMN key_name')
    # Only nobody's records survive: a key string may now be stored twice.
    db.execute_sql("DELETE FROM idempotency_record WHERE owner <> ''")
    if sqlite:
        db.execute_sql('CREATE TABLE idempotency_record_old (key VARCHAR(255) NOT NULL PRIMARY '
                       'KEY, fingerprint VARCHAR(64) NOT NULL, status INTEGER NOT NULL, '
                       'body TEXT NOT NULL, created_at DATETIME NOT NULL)')
        db.execute_sql('INSERT INTO idempotency_record_old SELECT key, fingerprint, status, '
                       'body, created_at FROM idempotency_record')
        db.execute_sql('DROP TABLE idempotency_record')
        db.execute_sql('ALTER TABLE idempotency_record_old RENAME TO idempotency_record')
        db.execute_sql('CREATE INDEX idempotency_record_created_at '
                       'ON idempotency_record (created_at)')
        return
    db.execute_sql('ALTER TABLE idempotency_record DROP CONSTRAINT idempotency_record_pkey')
    db.execute_sql('ALTER TABLE idempotency_record DROP COLUMN owner')
    db.execute_sql('ALTER TABLE idempotency_record ADD PRIMARY KEY (key)')
    db.execute_sql('DROP FUNCTION ledger_post(text, bigint, bigint, numeric, text, text)')
    db.execute_sql(_load('0004_settled_journal.py').LEDGER_POST)
    db.execute_sql('DROP FUNCTION %s, text)' % _OLD_POINTS_POST)
    db.execute_sql(_load('0006_points_post.py').POINTS_FUNCTIONS[
        _load('0006_points_post.py').POINTS_FUNCTIONS.index('CREATE FUNCTION points_post('):])
