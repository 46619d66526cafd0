"""Generating and claiming discount codes, and each brand's figures.

Every change is one transaction that writes its audit row with it: a
generation's codes and its audit row commit together, and so do a claim
and its audit row.

A claim never hands out a code twice. On PostgreSQL it is one statement
(``pg_sql.claim``) that takes the brand's lowest unclaimed code with
``FOR UPDATE SKIP LOCKED``, so concurrent claims each lock a different
code instead of queueing on the same one, and an update whose code was
claimed meanwhile is re-checked and skipped by the server; on SQLite the
write lock is taken at BEGIN, so claims run one at a time. A user holds at
most one code per brand (a unique index): two claims of one user racing
each other end with one code, and the loser answers with the winner's.
"""
from typing import NamedTuple

import peewee

from ..clock import utc_now
from ..money import members
from ..storage.db import is_postgres, write_transaction
from . import codes, errors, pg_sql
from .models import CLAIM, GENERATE, DiscountAudit, DiscountBrand, DiscountCode

MAX_CODES = 1000000
# Codes drawn and inserted per statement: a few hundred kilobytes of
# parameters, a fraction of a second each, so a long generation keeps
# telling the server it is alive (``on_batch``).
BATCH = 50000
# Draws in a row that add no code at all: the brand's codes are (nearly)
# all taken, and drawing on would not end.
_FRUITLESS_DRAWS = 3


class Claimed(NamedTuple):
    code: str
    # False when the user already held it (nothing was written).
    new: bool


class BrandStats(NamedTuple):
    brand_id: int
    generated: int
    claimed: int

    @property
    def remaining(self):
        return self.generated - self.claimed

    def to_dict(self):
        return {'brand_id': self.brand_id, 'generated': self.generated,
                'claimed': self.claimed, 'remaining': self.remaining}


def generate(db, brand_id, number, *, key_name=None, clock=utc_now, on_batch=None):
    """Add ``number`` (1 to MAX_CODES) new codes to the brand, creating the
    brand on its first generation; returns the generation's audit row id.

    Codes are drawn at random; one the brand already has is dropped by the
    insert (``ON CONFLICT DO NOTHING``) and drawn again, so a code is never
    stored twice. ``on_batch()`` is called after every BATCH codes.
    """
    if not 1 <= number <= MAX_CODES:
        raise errors.InvalidNumberOfCodes()
    with write_transaction(db):
        now = clock()
        DiscountBrand.insert(id=brand_id, created_at=now).on_conflict_ignore().execute()
        if is_postgres(db):
            # The database's clock, read after the audit id (migration 0011).
            generation = pg_sql.insert_generation(db, brand_id, number, key_name)
        else:
            generation = DiscountAudit.insert(created_at=now, action=GENERATE, brand=brand_id,
                                              codes=number, key_name=key_name).execute()
        missing, fruitless = number, 0
        while missing:
            inserted = _insert_codes(db, brand_id, generation,
                                     codes.draw(min(missing, BATCH)))
            missing -= inserted
            fruitless = 0 if inserted else fruitless + 1
            if fruitless >= _FRUITLESS_DRAWS:
                raise errors.CodesExhausted()
            if on_batch is not None:
                on_batch()
    return generation


def _insert_codes(db, brand_id, generation, drawn):
    """Insert the codes the brand does not have yet; returns how many."""
    if is_postgres(db):
        return pg_sql.insert_codes(db, brand_id, generation, drawn)
    # One prepared statement run for every row: 100,000 codes in 1.2 s,
    # against 3.6 s for peewee's insert_many in pages of 5,000 rows (the
    # rows' SQL is built in Python).
    cursor = db.cursor()
    cursor.executemany('INSERT OR IGNORE INTO discount_code (brand_id, code, generation_id) '
                       'VALUES (?, ?, ?)', [(brand_id, code, generation) for code in drawn])
    return cursor.rowcount


def claim(db, brand_id, user_id, *, key_name=None, clock=utc_now):
    """The user's code of the brand: the one it holds, or else an unclaimed
    one, which becomes its own (with the claim's audit row). ``Claimed``.

    ``clock`` dates the claim on SQLite; PostgreSQL's clock dates it there,
    read after the audit id is taken (as for a generation's row)."""
    if not members.exists(db, user_id):
        raise errors.UnknownDiscountUser()
    if is_postgres(db):
        return _claim_on_server(db, brand_id, user_id, key_name)
    # Asking again is a read: it needs no write lock.
    held = _held(brand_id, user_id)
    if held is not None:
        return Claimed(held, False)
    with write_transaction(db):
        held = _held(brand_id, user_id)
        if held is not None:
            return Claimed(held, False)
        if not DiscountBrand.select().where(DiscountBrand.id == brand_id).exists():
            raise errors.UnknownBrand()
        found = (DiscountCode.select(DiscountCode.id, DiscountCode.code)
                 .where((DiscountCode.brand == brand_id) & DiscountCode.user_id.is_null())
                 .order_by(DiscountCode.id).limit(1).tuples().first())
        if found is None:
            raise errors.OutOfCodes()
        code_id, code = found
        now = clock()
        audit_id = DiscountAudit.insert(created_at=now, action=CLAIM, brand=brand_id, codes=1,
                                        code=code, user_id=user_id,
                                        key_name=key_name).execute()
        DiscountCode.update(user_id=user_id, claim=audit_id, claimed_at=now).where(
            DiscountCode.id == code_id).execute()
        return Claimed(code, True)


def _claim_on_server(db, brand_id, user_id, key_name):
    try:
        outcome = pg_sql.claim(db, brand_id, user_id, key_name)
    except peewee.IntegrityError:
        # The same user's other claim committed first (the unique index on
        # brand and user): that code is the user's. Nothing of this one stays.
        outcome = pg_sql.claim(db, brand_id, user_id, key_name)
    if outcome.held is not None:
        return Claimed(outcome.held, False)
    if outcome.claimed is not None:
        return Claimed(outcome.claimed, True)
    if not outcome.brand_exists:
        raise errors.UnknownBrand()
    raise errors.OutOfCodes()


def _held(brand_id, user_id):
    return (DiscountCode.select(DiscountCode.code)
            .where((DiscountCode.brand == brand_id) & (DiscountCode.user_id == user_id))
            .scalar())


def _counts():
    # Each count reads one index only: all of the brand's codes in (brand, code),
    # the claimed ones in the partial index on (brand, user). One aggregate over
    # a join visited every code's row: 7.6 s against 0.23 s on SQLite for a
    # brand of 1,000,000 codes.
    codes = DiscountCode.alias('codes')
    claimed = DiscountCode.alias('claimed')
    return (DiscountBrand.select(
        DiscountBrand.id,
        codes.select(peewee.fn.COUNT(codes.id)).where(codes.brand == DiscountBrand.id),
        claimed.select(peewee.fn.COUNT(claimed.id)).where(
            (claimed.brand == DiscountBrand.id) & claimed.user_id.is_null(False)))
        .order_by(DiscountBrand.id))


def brand_stats(db, brand_id):
    """The brand's ``BrandStats``; raises UnknownBrand."""
    found = _counts().where(DiscountBrand.id == brand_id).tuples().first()
    if found is None:
        raise errors.UnknownBrand()
    return BrandStats(*found)


def all_stats(db):
    """Every brand's ``BrandStats``, by brand id."""
    return [BrandStats(*row) for row in _counts().tuples()]
