"""How export rows are written: RFC 4180 CSV or JSON Lines, both UTF-8.

CSV: a header row, then one row per record, CRLF line ends, quoting as the
csv module does it (minimal). A text cell (free text a client wrote: a
description, a key, club, wallet or payer name, a transaction id) that
begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'``, so a spreadsheet shows it instead of evaluating it. Numbers,
times, hashes and operation names are written by the service and never
neutralised (a negative points amount stays ``-30``, a number).

JSON Lines: one JSON object per line (``\\n``), keys in column order, text
exactly as stored (JSON escapes, no ``'``), amounts as strings with two
decimals, missing values as null.
"""
import csv
import datetime
import io
import json

FORMULA_STARTS = ('=', '+', '-', '@', '\t', '\r')
MEDIA_TYPES = {'csv': 'text/csv; charset=utf-8', 'jsonl': 'application/jsonl; charset=utf-8'}


def stamp(value):
    """A stored time as ISO 8601 UTC to the microsecond: 2024-05-01T10:00:00.000000Z.

    PostgreSQL gives naive UTC datetimes; SQLite stores their text.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def neutralise(text):
    """A text cell as CSV shows it: a leading ``'`` where a spreadsheet would see a formula."""
    if text and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def unneutralise(text):
    """What ``neutralise`` was given (the CSV cell of a text column)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


class CsvWriter:
    def __init__(self, columns, text_columns):
        self.columns = columns
        self.text_columns = text_columns

    def _lines(self, rows):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator='\r\n')
        writer.writerows(rows)
        return buffer.getvalue().encode('utf-8')

    def header(self):
        return self._lines([self.columns])

    def rows(self, records):
        return self._lines([[self._cell(name, record[name]) for name in self.columns]
                            for record in records])

    def _cell(self, name, value):
        if value is None:
            return ''
        if name in self.text_columns:
            return neutralise(value)
        return str(value)


class JsonLinesWriter:
    def __init__(self, columns, text_columns):
        self.columns = columns

    def header(self):
        return b''

    def rows(self, records):
        return ''.join(json.dumps({name: record[name] for name in self.columns},
                                  ensure_ascii=False) + '\n'
                       for record in records).encode('utf-8')


def writer(format, columns, text_columns):
    return (CsvWriter if format == 'csv' else JsonLinesWriter)(columns, text_columns)


def manifest_line(manifest):
    """The last line of a JSON Lines export."""
    return (json.dumps({'manifest': manifest}, ensure_ascii=False) + '\n').encode('utf-8')
