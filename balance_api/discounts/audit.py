"""The audit rows, as other domains read them (the finance exports).

Nothing outside this domain reads its tables: the exports select the
expressions ``columns()`` names through ``entries()`` and take each
brand's figures from ``brand_figures()``, so the tables can change behind
these functions.
"""
from peewee import fn

from ..findings import stream
from ..storage.db import is_postgres
from . import pg_sql
from .models import ACTIONS, CLAIM, GENERATE, DiscountAudit, DiscountBrand

__all__ = ['ACTIONS', 'MODELS', 'brand_figures', 'columns', 'entries', 'newest_id', 'rows',
           'settled_id']

# The models behind these functions, for a caller that binds them to a
# database of its own.
MODELS = [DiscountAudit]


def columns():
    """The audit row's columns as exported, in order: ``(name, expression)``.

    ``codes`` is how many codes a generation made, 1 for a claim; ``code``
    and ``user_id`` are a claim's (None for a generation)."""
    return [('id', DiscountAudit.id), ('date', DiscountAudit.created_at),
            ('action', DiscountAudit.action), ('brand_id', DiscountAudit.brand),
            ('codes', DiscountAudit.codes), ('code', DiscountAudit.code),
            ('user_id', DiscountAudit.user_id), ('key_name', DiscountAudit.key_name)]


def entries(start, end, user_id, *selected, up_to=None):
    """The audit rows written from ``start`` (inclusive) to ``end``
    (exclusive; None: no end), only the claims of ``user_id`` when given,
    only ids up to ``up_to`` when given (``settled_id``), in id order,
    selecting ``selected`` (expressions of ``columns()``)."""
    rows = DiscountAudit.select(*selected).where(DiscountAudit.created_at >= start)
    if up_to is not None:
        rows = rows.where(DiscountAudit.id <= up_to)
    if end is not None:
        rows = rows.where(DiscountAudit.created_at < end)
    if user_id is not None:
        rows = rows.where(DiscountAudit.user_id == user_id)
    return rows.order_by(DiscountAudit.id)


def newest_id():
    """A read of the audit table (it starts an SQLite snapshot)."""
    return DiscountAudit.select(fn.MAX(DiscountAudit.id)).scalar()


def settled_id(db):
    """The largest audit id below which no row is in flight any more: every
    row with an id up to it is committed or rolled back for good, so a
    snapshot begun afterwards holds all of those there are. On PostgreSQL it
    waits for the writers that could still hold one (migration 0011); call it
    outside a transaction. None on SQLite, whose writers commit one at a time
    in id order: there every id a snapshot sees is settled."""
    return pg_sql.audit_settled_id(db) if is_postgres(db) else None


def rows(db, up_to=None):
    """Every audit row in id order, up to id ``up_to`` when given, as tuples
    ``(id, created_at, action, brand_id, codes, code, user_id, key_name)``
    (generations: ``code`` and ``user_id`` None), through one cursor."""
    query = DiscountAudit.select(
        DiscountAudit.id, DiscountAudit.created_at, DiscountAudit.action, DiscountAudit.brand,
        DiscountAudit.codes, DiscountAudit.code, DiscountAudit.user_id, DiscountAudit.key_name)
    if up_to is not None:
        query = query.where(DiscountAudit.id <= up_to)
    return stream(db, query.order_by(DiscountAudit.id).tuples())


def _total(action, before, up_to):
    """Correlated: the codes of the outer brand's ``action`` rows written before
    ``before``, of ids up to ``up_to`` when given."""
    rows = DiscountAudit.alias('totals')
    found = rows.select(fn.COALESCE(fn.SUM(rows.codes), 0)).where(
        (rows.brand == DiscountBrand.id) & (rows.action == action))
    if before is not None:
        found = found.where(rows.created_at < before)
    if up_to is not None:
        found = found.where(rows.id <= up_to)
    return found


def brand_figures(start, end, user_id, up_to=None):
    """A query of ``(brand_id, generated, claimed, generated_by_end, claimed_by_end)``
    for every brand the rows of ``entries`` touch, by brand id: the codes
    generated and claimed before ``start``, and before ``end`` (ids up to
    ``up_to`` when given)."""
    touched = entries(start, end, user_id, DiscountAudit.brand, up_to=up_to).order_by()
    return (DiscountBrand.select(DiscountBrand.id, _total(GENERATE, start, up_to),
                                 _total(CLAIM, start, up_to), _total(GENERATE, end, up_to),
                                 _total(CLAIM, end, up_to))
            .where(DiscountBrand.id.in_(touched)).order_by(DiscountBrand.id))
