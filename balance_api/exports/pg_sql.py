"""The exports' own statements on PostgreSQL.

Everything else an export reads is built with the models and runs on both
databases; these are the few PostgreSQL-only statements around it, and
the expressions that have the server render each exported line.
"""
from peewee import SQL, Case, Function, NodeList, Value, fn

from ..storage.db import READ_ONLY_SNAPSHOT
from . import formats

# The first statement of the snapshot: the snapshot is taken as it starts,
# and it reads the server's clock then.
SNAPSHOT_TIME = "SELECT clock_timestamp() AT TIME ZONE 'UTC'"


def begin_snapshot(db):
    """Make the open transaction a read-only snapshot (the whole export, rows and
    manifest figures, reads one and writes nothing); returns its time (naive UTC).

    Call it first in the transaction (``SET TRANSACTION`` must precede any
    query).
    """
    db.execute_sql(READ_ONLY_SNAPSHOT)
    return db.execute_sql(SNAPSHOT_TIME).fetchone()[0]


# -- rows rendered by the server ---------------------------------------------
#
# On PostgreSQL each exported row is selected as the text of its whole output
# line, byte for byte what ``formats.CsvWriter`` or ``formats.JsonLinesWriter``
# writes for it, so the worker only joins text. The expressions are peewee
# nodes; constants travel as bound parameters.

# ``formats.stamp``: strftime's %Y has no leading zeros (year 5 is "5"), as FMYYYY.
_STAMP = 'FMYYYY-MM-DD"T"HH24:MI:SS.US"Z"'
# What makes the csv module (QUOTE_MINIMAL, lineterminator CRLF) quote a cell.
_NEEDS_QUOTES = ('"', ',', '\r', '\n')


def _const(text):
    # converter=False: a constant next to a column is not that column's value.
    return Value(text, converter=False)


def _concat(parts):
    return NodeList(parts, glue=' || ', parens=True)


def _stamp(column):
    return fn.to_char(column, _const(_STAMP))


def _needs_quotes(column):
    # strpos is cheaper than a regular expression here.
    found = [fn.strpos(column, _const(c)) for c in _NEEDS_QUOTES]
    return NodeList([NodeList(found, glue=' + ', parens=True), SQL('> 0')])


def _quoted(column, prefix=None):
    """The csv module's cell of a text ``column`` ('' for NULL), with
    ``prefix`` (an expression) written before the text."""
    lead = [] if prefix is None else [prefix]
    return Case(None, [
        (column.is_null(), _const('')),
        (_needs_quotes(column),
         _concat([_const('"'), *lead, fn.replace(column, _const('"'), _const('""')),
                  _const('"')])),
    ], _concat([*lead, column]) if lead else column)


def _guarded(column):
    """A client's text as a CSV cell: ``formats.neutralise``, then quoted as needed."""
    prefix = Case(None, [(fn.left(column, 1).in_([_const(c) for c in formats.FORMULA_STARTS]),
                          _const("'"))], _const(''))
    return _quoted(column, prefix)


# The kinds of value a column holds, each rendered for CSV and for JSON.
# PLAIN: text that never needs quoting or escaping: a points entry's draws
# (digits, colons and spaces), and the operation and event type (a CHECK
# constraint keeps them to a few plain names).
NUMBER, AMOUNT, STAMP, PLAIN, TEXT, CLIENT_TEXT = (
    'number', 'amount', 'stamp', 'plain', 'text', 'client_text')


def _csv_cell(kind, column):
    if kind in (NUMBER, AMOUNT):
        return fn.COALESCE(column.cast('text'), _const(''))
    if kind == STAMP:
        return fn.COALESCE(_stamp(column), _const(''))
    if kind == PLAIN:
        return fn.COALESCE(column, _const(''))
    if kind == CLIENT_TEXT:
        return _guarded(column)
    return _quoted(column)


def _json_value(kind, column):
    if kind == NUMBER:
        return fn.COALESCE(column.cast('text'), _const('null'))
    if kind == AMOUNT:
        text = _concat([_const('"'), column.cast('text'), _const('"')])
    elif kind == PLAIN:
        text = _concat([_const('"'), column, _const('"')])
    elif kind == STAMP:
        text = _concat([_const('"'), _stamp(column), _const('"')])
    else:
        # to_json escapes as json.dumps(ensure_ascii=False) does: the short
        # escapes, other control characters as \u00XX, everything else as is.
        text = fn.to_json(column).cast('text')
    return fn.COALESCE(text, _const('null'))


def line(format, cells):
    """The text of one output line: ``cells`` are ``(name, kind, column)`` in
    column order. Every cell is non-NULL text; concat copies them once."""
    if format == 'csv':
        return fn.concat_ws(_const(','), *[_csv_cell(kind, column)
                                           for name, kind, column in cells[:-1]],
                            _concat([_csv_cell(*cells[-1][1:]), _const('\r\n')]))
    parts = []
    for index, (name, kind, column) in enumerate(cells):
        parts.append(_const(('{"' if index == 0 else ', "') + name + '": '))
        parts.append(_json_value(kind, column))
    parts.append(_const('}\n'))
    # (``fn.concat`` is peewee's own method.)
    return Function('concat', parts)
