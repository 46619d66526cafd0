"""Points changes on PostgreSQL, written out in SQL.

A change is one statement: a call of the server-side function
``points_post`` (migrations 0006 and 0007), which takes the decisions
``balance_api.points.ledger`` takes on SQLite, in the same order. Built
through the ORM, a spend was 14 statements and about 14 ms in-process
(falcon.testing, a member with 200 grants) against 1.2 ms for a deposit;
the tables are the ones ``balance_api.points.models`` describes.
"""
from typing import NamedTuple

from ..storage.pg import preparable, run


class Posted(NamedTuple):
    """One row of ``points_post``: a refusal's API error code (0 when the
    change was written), then the entry written."""
    refusal: int
    id: int
    payer: str
    points: int
    balance_after: int


_POST = preparable(
    'SELECT refusal, entry_id, entry_payer, entry_points, wallet_balance FROM points_post('
    '%s::bigint, %s::text, %s::text, %s::text, %s::bigint, %s::text, %s::timestamp, %s::date, '
    '%s::text, %s::text, %s::text, %s::text, %s::text, %s::text, %s::text, %s::date, '
    '%s::timestamp, %s::text)')


def post(db, member_id, points, *, club, wallet, payer, event_type, event_at, expires_on,
         transaction_id, event, message, store_id, receipt_id, properties, reported, today,
         now, key_name):
    """Post one movement of points on the server; returns its ``Posted`` rows:
    one with a refusal, or one per entry written (one per payer drawn)."""
    rows = run(db, _POST, (member_id, club, wallet, payer, points, event_type, event_at,
                           expires_on, transaction_id, event, message, store_id, receipt_id,
                           properties, reported, today, now, key_name)).fetchall()
    return [Posted(*row) for row in rows]


# 0x70747869 ('ptxi') names these advisory locks among other applications'.
_LOCK_TRANSACTION_IDS = preparable(
    'SELECT count(pg_advisory_xact_lock(1886680169, hashed)) FROM ('
    'SELECT DISTINCT hashtext(%s || chr(31) || id) AS hashed '
    'FROM unnest(%s::text[]) AS given (id) ORDER BY hashed) AS ordered')


def lock_transaction_ids(db, club, transaction_ids):
    """Lock the client transaction ids a batch may claim in ``club``, in one
    order every batch shares, inside the caller's transaction.

    Claims are inserts into a unique index: two batches claiming the same
    ids in crossing orders would each wait for the other's claim (a
    deadlock). Holding these locks first, in a fixed order, makes the second
    batch wait before its first claim instead.
    """
    if transaction_ids:
        run(db, _LOCK_TRANSACTION_IDS, (club, sorted(set(transaction_ids)))).fetchone()
