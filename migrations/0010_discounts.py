"""Discount codes: brands, their codes, and the audit of every generation and claim.

- ``discount_brand``: one row per brand (the client's brand_id), made by
  its first generation.
- ``discount_audit``: one row per generation (how many codes, by which
  key) and per claim (which code went to which user, by which key),
  written in the transaction of the change; the exports publish it.
- ``discount_code``: a brand's codes, unique per brand. A claimed code
  names its user, when it was claimed and its claim's audit row; a user
  holds at most one code per brand (a unique index over the claimed codes
  only, so unclaimed codes cost it nothing), and a claim's audit row names
  one code. Claims take the lowest unclaimed id through an index that
  holds only the unclaimed codes, so a brand's claimed codes cost a claim
  nothing.

``discount_code`` has no foreign keys: codes are inserted by the hundred
thousand, and PostgreSQL checks a foreign key with a trigger per row. With
the three (brand, generation, claim) and an index on generation_id,
100,000 codes took 5.3-5.8 s to insert on the 2-core development machine;
without them 3.1 s. ``verify`` checks each code's brand, generation and
claim instead (``balance_api.discounts.verify``).
"""
from peewee import SqliteDatabase

TABLES = """
CREATE TABLE discount_brand (
    id BIGINT NOT NULL PRIMARY KEY CHECK (id > 0),
    created_at {timestamp} NOT NULL
);
CREATE TABLE discount_audit (
    id {id_type},
    created_at {timestamp} NOT NULL,
    action VARCHAR(16) NOT NULL CHECK (action IN ('generate', 'claim')),
    brand_id BIGINT NOT NULL REFERENCES discount_brand (id),
    codes BIGINT NOT NULL CHECK (codes > 0),
    code VARCHAR(8),
    user_id BIGINT,
    key_name VARCHAR(64),
    CHECK ((action = 'generate' AND code IS NULL AND user_id IS NULL)
           OR (action = 'claim' AND codes = 1 AND code IS NOT NULL AND user_id IS NOT NULL))
);
CREATE TABLE discount_code (
    id {id_type},
    brand_id BIGINT NOT NULL,
    code VARCHAR(8) NOT NULL CHECK (length(code) = 8),
    generation_id BIGINT NOT NULL,
    user_id BIGINT,
    claim_id BIGINT,
    claimed_at {timestamp},
    CHECK ((user_id IS NULL AND claim_id IS NULL AND claimed_at IS NULL)
           OR (user_id IS NOT NULL AND claim_id IS NOT NULL AND claimed_at IS NOT NULL))
);
CREATE UNIQUE INDEX discount_code_brand_code ON discount_code (brand_id, code);
CREATE UNIQUE INDEX discount_code_brand_user ON discount_code (brand_id, user_id)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX discount_code_claim ON discount_code (claim_id) WHERE claim_id IS NOT NULL;
CREATE INDEX discount_code_unclaimed ON discount_code (brand_id, id) WHERE user_id IS NULL;
CREATE INDEX discount_audit_created_at ON discount_audit (created_at);
CREATE INDEX discount_audit_brand ON discount_audit (brand_id, id)
"""


def up(migrator, db):
    sqlite = isinstance(db, SqliteDatabase)
    text = TABLES.format(
        id_type='INTEGER PRIMARY KEY AUTOINCREMENT' if sqlite else 'BIGSERIAL PRIMARY KEY',
        timestamp='DATETIME' if sqlite else 'TIMESTAMP')
    for statement in text.split(';'):
        db.execute_sql(statement)


def down(migrator, db):
    for table in ('discount_code', 'discount_audit', 'discount_brand'):
        db.execute_sql('DROP TABLE %s' % table)
