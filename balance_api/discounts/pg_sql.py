"""Discount codes on PostgreSQL, written out in SQL where it was measured to matter.

- ``insert_codes``: one statement per batch, the codes as one array
  parameter. 100,000 codes in 3.1 s on the 2-core development machine
  (4.2 s through COPY into a staging table and INSERT ... SELECT from
  it, the same within noise; 10 s through peewee's insert_many).
- ``claim``: one round trip, one statement: the code the user holds, or
  the lowest unclaimed one locked with ``FOR UPDATE SKIP LOCKED``, claimed,
  with its audit row.
- ``insert_generation``: a generation's audit row.

An audit row's id and time come from ``discount_audit_next_entry()``
(migration 0011): the id first, with the writer's lock, then the database's
clock, so a row dated before a moment took its id before it. It costs the
claim statement 9 %: pgbench, 16 clients, 6,090 tps against 6,734 with the
time passed in from Python, alternating runs on the development machine.

The tables are the ones ``balance_api.discounts.models`` describes.
"""
from typing import NamedTuple, Optional

from ..storage.pg import preparable, run

_INSERT_CODES = preparable(
    'INSERT INTO discount_code (brand_id, code, generation_id) '
    'SELECT %s::bigint, drawn, %s::bigint FROM unnest(%s::text[]) AS drawn '
    'ON CONFLICT (brand_id, code) DO NOTHING')


_AUDIT_SETTLED = preparable('SELECT discount_audit_settled_id()')


def audit_settled_id(db):
    """The largest audit id below which no row is in flight any more
    (``discount_audit_settled_id``, migration 0011). Run it outside a
    transaction: the locks it waits with are released when its transaction ends."""
    return run(db, _AUDIT_SETTLED).fetchone()[0]


_INSERT_GENERATION = preparable(
    "INSERT INTO discount_audit (id, created_at, action, brand_id, codes, key_name) "
    "SELECT next.id, next.created_at, 'generate', %s::bigint, %s::bigint, %s::text "
    "FROM discount_audit_next_entry() AS next RETURNING id")


def insert_generation(db, brand_id, number, key_name):
    """A generation's audit row; returns its id."""
    return run(db, _INSERT_GENERATION, (brand_id, number, key_name)).fetchone()[0]


def insert_codes(db, brand_id, generation_id, drawn):
    """Insert the ``drawn`` codes the brand does not have yet; returns how many."""
    return run(db, _INSERT_CODES, (brand_id, generation_id, list(drawn))).rowcount


class ClaimOutcome(NamedTuple):
    brand_exists: bool
    # The code the user already held (nothing was written), or the one just claimed.
    held: Optional[str]
    claimed: Optional[str]


# ``picked`` is materialized (it locks rows): evaluated once, whatever
# refers to it. A row another claim updated and committed after this
# statement's snapshot is re-read when locked, fails ``user_id IS NULL``
# and is passed over; a row another claim holds locked is skipped.
# ``entry`` calls discount_audit_next_entry() once per picked code, so a
# claim that picks none (the user holds one, or none is left) takes no
# audit id and no lock.
_CLAIM = preparable("""
WITH held AS (
    SELECT code FROM discount_code WHERE brand_id = %s::bigint AND user_id = %s::bigint
), picked AS (
    SELECT id, code FROM discount_code
    WHERE brand_id = %s::bigint AND user_id IS NULL AND NOT EXISTS (SELECT 1 FROM held)
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), entry AS MATERIALIZED (
    SELECT discount_audit_next_entry() AS next FROM picked
), audited AS (
    INSERT INTO discount_audit (id, created_at, action, brand_id, codes, code, user_id,
                                key_name)
    SELECT (entry.next).id, (entry.next).created_at, 'claim', %s::bigint, 1, picked.code,
           %s::bigint, %s::text
    FROM picked, entry
    RETURNING id, created_at
), claimed AS (
    UPDATE discount_code SET user_id = %s::bigint, claim_id = audited.id,
                             claimed_at = audited.created_at
    FROM picked, audited
    WHERE discount_code.id = picked.id
    RETURNING discount_code.code
)
SELECT EXISTS (SELECT 1 FROM discount_brand WHERE id = %s::bigint),
       (SELECT code FROM held), (SELECT code FROM claimed)
""")


def claim(db, brand_id, user_id, key_name):
    """Claim a code of the brand for the user (see the statement); ``ClaimOutcome``.

    Raises IntegrityError when another claim of the same user committed a
    code first (the unique index on brand and user); nothing is written then.
    """
    row = run(db, _CLAIM, (brand_id, user_id, brand_id, brand_id, user_id, key_name,
                           user_id, brand_id)).fetchone()
    return ClaimOutcome(*row)
