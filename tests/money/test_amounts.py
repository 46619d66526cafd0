"""Amounts are parsed exactly or refused, and stored and read back without a float."""
import re
from decimal import Decimal

import peewee
import pytest

from balance_api.money.amounts import MAX_AMOUNT, MoneyField, fits, format_amount, parse_amount
from balance_api.money.schemas import AMOUNT_REQUEST_PATTERN


def _cents(amount):
    """The amount and its exponent: parsed amounts always carry two places."""
    return (amount, amount.as_tuple().exponent) if isinstance(amount, Decimal) else amount


@pytest.mark.parametrize('value, expected', [
    (Decimal('10'), Decimal('10.00')),
    (Decimal('1.5'), Decimal('1.50')),
    (Decimal('32.40'), Decimal('32.40')),
    (Decimal('0.01'), Decimal('0.01')),
    (Decimal('99999999999999999.99'), MAX_AMOUNT),
    (1, Decimal('1.00')),
    (99999999999999999, Decimal('99999999999999999.00')),
    ('32', Decimal('32.00')),
    ('32.4', Decimal('32.40')),
    ('32.40', Decimal('32.40')),
    ('0.01', Decimal('0.01')),
    ('0.5', Decimal('0.50')),
    ('99999999999999999.99', MAX_AMOUNT),
])
def test_plain_positive_amounts_are_accepted_with_two_places(value, expected):
    assert _cents(parse_amount(value)) == (expected, -2)


@pytest.mark.parametrize('value', [
    # Exponent notation, however the Decimal came to be.
    Decimal('1e1'), Decimal('1E+1'), Decimal('1e3'), Decimal('1E+2'), Decimal('1e999999999'),
    # More than two places, even when the extra digits are zeros.
    Decimal('1.000'), Decimal('0.001'), Decimal('1.005'),
    # Not finite.
    Decimal('NaN'), Decimal('sNaN'), Decimal('Infinity'), Decimal('-Infinity'),
    # Not positive.
    Decimal('-1'), Decimal('-0.01'), Decimal('0'), Decimal('0.00'), Decimal('-0'),
    # Too large.
    Decimal('100000000000000000'), Decimal('100000000000000000.00'),
], ids=str)
def test_decimals_that_are_no_plain_amount_are_refused(value):
    assert parse_amount(value) is None


@pytest.mark.parametrize('value', [0, -1, -100, 100000000000000000, 10 ** 30])
def test_ints_out_of_range_are_refused(value):
    assert parse_amount(value) is None


@pytest.mark.parametrize('value', [True, False])
def test_booleans_are_not_amounts(value):
    # bool is an int subclass: True would otherwise be 1.00.
    assert parse_amount(value) is None


@pytest.mark.parametrize('value', [
    '1e1', '1E+1', '1e3', '1.000', 'NaN', 'nan', 'Infinity', 'inf', '-1', '+1', '-0.01', '0',
    '0.00', '', ' 5', '5 ', '5\n', '1,04', '1_000', '.5', '5.', '0x10', '\u0663', '\uff15',
    '100000000000000000', '99999999999999999999.99',
    # A leading zero: one amount, one spelling (these were accepted once).
    '007', '05.00', '00.50', '00', '01', '01234567890123456',
], ids=repr)
def test_strings_that_are_no_plain_amount_are_refused(value):
    assert parse_amount(value) is None


@pytest.mark.parametrize('text', [
    '1', '32', '32.4', '32.40', '0.01', '0.5', '0.10', '10', '100.00', '99999999999999999.99',
    '0', '0.0', '0.00', '00', '007', '05.00', '00.50', '01', '1.001', '.5', '5.', '-1', '+1',
    '1e3', '100000000000000000', '', ' 5',
], ids=repr)
def test_openapi_pattern_accepts_exactly_what_the_parser_accepts(text):
    # Generated clients and schemathesis read the pattern; the service runs the parser.
    assert (re.search(AMOUNT_REQUEST_PATTERN, text) is not None) == (parse_amount(text) is not None)


@pytest.mark.parametrize('value', [1.5, 10.0, None, [], {}, b'5', object()], ids=repr)
def test_other_types_are_refused(value):
    assert parse_amount(value) is None


def test_format_and_fits():
    assert format_amount(Decimal('5')) == '5.00'
    assert format_amount(Decimal('-0.5')) == '-0.50'
    assert format_amount(MAX_AMOUNT) == '99999999999999999.99'
    assert fits(MAX_AMOUNT) and fits(-MAX_AMOUNT)
    assert not fits(MAX_AMOUNT + Decimal('0.01'))
    assert not fits(-MAX_AMOUNT - Decimal('0.01'))


class _Row(peewee.Model):
    amount = MoneyField(null=True)

    class Meta:
        database = peewee.SqliteDatabase(None)


def test_money_field_reads_exact_values():
    field = _Row.amount
    assert _cents(field.python_value('1.5')) == (Decimal('1.5'), -1)
    assert _cents(field.python_value(Decimal('1.5'))) == (Decimal('1.50'), -2)
    assert field.python_value(None) is None


@pytest.mark.parametrize('value', [1.5, 0.1, 2, True])
def test_money_field_refuses_inexact_values_from_the_column(value):
    with pytest.raises(TypeError):
        _Row.amount.python_value(value)


@pytest.mark.parametrize('value, shown', [(1.5, '1.5 (float)'), (2, '2 (int)')])
def test_money_field_names_the_inexact_value_it_got(value, shown):
    # What an operator needs to find the column that lost exactness.
    with pytest.raises(TypeError) as refused:
        _Row.amount.python_value(value)
    assert str(refused.value) == 'amount column returned %s, not an exact value' % shown


def test_money_field_binds_canonical_strings():
    field = _Row.amount
    assert field.db_value(Decimal('1.5')) == '1.50'
    assert field.db_value(Decimal('-3')) == '-3.00'
    assert field.db_value(None) is None


def _create_table_sql(db):
    with db.bind_ctx([_Row]):
        sql, _ = _Row._schema._create_table(safe=False).query()
    return sql


# Runs without a PostgreSQL server: nothing connects.
def test_money_field_column_type_follows_the_database():
    for db, ddl in ((peewee.SqliteDatabase(':memory:'), '"amount" TEXT'),
                    (peewee.PostgresqlDatabase('unused'), '"amount" NUMERIC(19, 2)')):
        sql = _create_table_sql(db)
        assert ddl in sql, sql
    mysql = peewee.MySQLDatabase('unused')
    with pytest.raises(TypeError) as refused:
        _create_table_sql(mysql)
    assert str(refused.value) == 'MoneyField supports SQLite and PostgreSQL, not %r' % mysql


def test_money_field_column_type_looks_through_a_database_proxy():
    # The application's models are bound to a proxy, initialized at start-up.
    proxy = peewee.DatabaseProxy()

    class ProxiedRow(peewee.Model):
        amount = MoneyField()

        class Meta:
            database = proxy

    for db, ddl in ((peewee.SqliteDatabase(':memory:'), '"amount" TEXT'),
                    (peewee.PostgresqlDatabase('unused'), '"amount" NUMERIC(19, 2)')):
        proxy.initialize(db)
        sql, _ = ProxiedRow._schema._create_table(safe=False).query()
        assert ddl in sql, sql
