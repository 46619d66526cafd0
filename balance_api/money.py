"""Exact money: parsing, formatting and storage of amounts as ``Decimal``.

Amounts are DECIMAL(19,2): at most 17 integer digits and 2 decimals. They
travel as strings ("32.40") in every response and are never converted to
float, not even on the way in from JSON.
"""
import re
from decimal import Decimal

import peewee

CENT = Decimal('0.01')
ZERO = Decimal('0.00')
# The largest magnitude a NUMERIC(19,2) column holds.
MAX_AMOUNT = Decimal('99999999999999999.99')

# ASCII digits only: str.isdigit() and Decimal() both accept other scripts'
# digits, exponents, underscores and surrounding spaces, none of which is an
# amount a client meant to send.
_AMOUNT_PATTERN = re.compile(r'[0-9]{1,17}(?:\.[0-9]{1,2})?', re.ASCII)


def parse_amount(value):
    """Return ``value`` as a positive ``Decimal`` with two places, or None.

    Accepts strings, ints and ``Decimal`` (what JSON numbers parse to with
    ``parse_float=Decimal``). Anything else, zero, a sign, more than two
    decimals or more than 17 integer digits is refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        if isinstance(value, Decimal) and not value.is_finite():
            return None
        value = format(value, 'f')
    if not isinstance(value, str) or not _AMOUNT_PATTERN.fullmatch(value):
        return None
    amount = Decimal(value).quantize(CENT)
    return amount if amount > 0 else None


def format_amount(amount):
    """Render an amount the way every response shows it: "32.40"."""
    return format(Decimal(amount).quantize(CENT), 'f')


def fits(amount):
    """Whether ``amount`` can be stored in a NUMERIC(19,2) column."""
    return abs(amount) <= MAX_AMOUNT


class MoneyField(peewee.Field):
    """An exact DECIMAL(19,2) column on every database.

    The column type is ``AMOUNT``, which the database object maps to
    ``NUMERIC(19,2)`` on PostgreSQL and to ``TEXT`` on SQLite, where a
    DECIMAL column would have NUMERIC affinity and silently store REAL.
    An unmapped database fails loudly at table creation instead of
    guessing. Values are bound as canonical strings, which PostgreSQL casts
    to NUMERIC, so no driver ever sees a float.
    """

    field_type = 'AMOUNT'

    def db_value(self, value):
        if value is None:
            return None
        return format_amount(value)

    def python_value(self, value):
        if value is None:
            return None
        return Decimal(value) if isinstance(value, str) else value.quantize(CENT)
