"""JSON text written by the database, for streamed responses.

A streamed row costs the worker nothing but a string join when the
database renders it: the query selects one column holding the row's JSON
text, exactly as ``json.dumps`` writes it (``{"key": value, ...}``, keys in
the given order), except that the database leaves non-ASCII characters
unescaped (the same JSON once parsed). Expressions are peewee nodes; the
constant parts travel as bound parameters.
"""
from peewee import NodeList, Value, fn

from .db import is_postgres


def _text(value):
    # converter=False: a constant next to a column is not that column's value.
    return Value(value, converter=False)


def number(column):
    """An integer column, written as is."""
    return [column]


def string(db, column):
    """A text column as a JSON string, escaped by the database."""
    return [fn.to_json(column).cast('text') if is_postgres(db) else fn.json_quote(column)]


def identifier(column):
    """A text column whose values never need escaping (a closed set of
    names, such as ``operation``), as a JSON string."""
    return ['"', column, '"']


def amount(db, column):
    """A money column as a JSON string with two decimals ("32.40").

    NUMERIC(19,2) prints two decimals; on SQLite amounts are stored as that
    text already.
    """
    return ['"', column.cast('text') if is_postgres(db) else column, '"']


def timestamp(db, column):
    """A timestamp column as "YYYY-MM-DD HH:MM:SS" (fraction dropped).

    On SQLite timestamps are stored as "YYYY-MM-DD HH:MM:SS[.ffffff]" text.
    """
    if is_postgres(db):
        return ['"', fn.to_char(column, 'YYYY-MM-DD HH24:MI:SS'), '"']
    return ['"', fn.substr(column, 1, 19), '"']


def json_object(members):
    """The JSON text of an object: ``members`` are ``(key, value)``, values
    from the functions above."""
    parts = []
    for index, (key, value) in enumerate(members):
        parts.append(('{"' if index == 0 else ', "') + key + '": ')
        parts.extend(value)
    parts.append('}')
    merged = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return NodeList([_text(part) if isinstance(part, str) else part for part in merged],
                    glue=' || ', parens=True)
