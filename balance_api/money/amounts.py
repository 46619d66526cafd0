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
# amount a client meant to send. No leading zero either: one amount has one
# spelling of its integer part, as in JSON, where 05 is no number at all.
_AMOUNT_PATTERN = re.compile(r'(?:0|[1-9][0-9]{0,16})(?:\.[0-9]{1,2})?', re.ASCII)


def parse_amount(value):
    """Return ``value`` as a positive ``Decimal`` with two places, or None.

    Accepts strings, ints and ``Decimal`` (what JSON numbers parse to with
    ``parse_float=Decimal``). Anything else, zero, a sign, a leading zero
    (``05.00``; ``0.50`` is fine), more than two decimals or more than 17
    integer digits is refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        # Not format(value, 'f'): for an int that means six decimals.
        value = str(value)
    elif isinstance(value, Decimal):
        # JSON numbers parse to Decimal. Refuse exponent notation (1e3) as in
        # strings, and before formatting: format(Decimal('1e999999999'), 'f')
        # is a billion characters long.
        if not value.is_finite() or not -2 <= value.as_tuple().exponent <= 0:
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

    ``NUMERIC(19,2)`` on PostgreSQL. On SQLite a DECIMAL (or any unknown)
    column type has NUMERIC affinity and silently stores REAL, so amounts
    are stored as TEXT there and all arithmetic happens in ``Decimal``.
    Values are bound as canonical strings, which PostgreSQL casts to
    NUMERIC, so no driver ever sees a float.
    """

    field_type = 'AMOUNT'

    def ddl_datatype(self, ctx):
        db = self.model._meta.database
        db = getattr(db, 'obj', db)  # a DatabaseProxy
        if isinstance(db, peewee.SqliteDatabase):
            return peewee.SQL('TEXT')
        if isinstance(db, peewee.PostgresqlDatabase):
            return peewee.SQL('NUMERIC(19, 2)')
        raise TypeError('MoneyField supports SQLite and PostgreSQL, not %r' % db)

    def db_value(self, value):
        if value is None:
            return None
        return format_amount(value)

    def python_value(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            return Decimal(value)
        if isinstance(value, Decimal):
            return value.quantize(CENT)
        # A float or int here means the column lost exactness somewhere.
        raise TypeError('amount column returned %r (%s), not an exact value'
                        % (value, type(value).__name__))
