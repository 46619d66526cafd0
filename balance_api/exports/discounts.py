"""The discount codes' audit rows as an export, with their manifest figures.

One row per generation and per claim, in id order, over a range of UTC
days of the time each was written (``created_at``), up to the settled
audit id (``audit.settled_id``: on PostgreSQL the export waits for the
writers still holding a smaller id, a generation of a million codes for up
to its 9 s). A row's time is read after its id (migration 0011), so an
export of a closed day, once it has waited, holds every row that day will
ever have. The rows are read through the
functions the discounts domain publishes (``balance_api.discounts.audit``),
never from its tables. ``uid`` keeps that user's claims; there is no
filter by action (``action=`` is an unknown key, 801).
"""
from ..discounts import audit
from . import formats, pg_sql, run

COLUMNS = tuple(name for name, _ in audit.columns())
# How the server renders each column (``pg_sql.line``): ``code`` is a
# drawn code (8 plain symbols) or empty, ``action`` one of two names.
_KINDS = {'id': pg_sql.NUMBER, 'date': pg_sql.STAMP, 'action': pg_sql.PLAIN,
          'brand_id': pg_sql.NUMBER, 'codes': pg_sql.NUMBER, 'code': pg_sql.PLAIN,
          'user_id': pg_sql.NUMBER, 'key_name': pg_sql.CLIENT_TEXT}


def _selected(*names):
    found = dict(audit.columns())
    return [found[name] for name in names]


def _entries(query, settled, *columns):
    return audit.entries(query.start, query.end, query.uid, *columns, up_to=settled)


class DiscountsSource:
    name = 'discounts'
    stem = 'discounts'
    kind_key = 'action'
    kinds = audit.ACTIONS
    # Exports of this source take no kind filter in their query.
    filter_key = None
    columns = COLUMNS
    text_columns = frozenset(['key_name'])
    kind_column, amount_column, amount_type = 'action', 'codes', int

    @staticmethod
    def settled_id(db):
        # Audit ids are handed out before commit (a generation commits
        # seconds after its row took one): the export reads up to the
        # settled id, so a row committed late is waited for, not skipped.
        return audit.settled_id(db)

    @staticmethod
    def probe():
        audit.newest_id()

    @staticmethod
    def rows(query, settled):
        return _entries(query, settled, *_selected(*COLUMNS))

    @staticmethod
    def lines(query, settled, format):
        """PostgreSQL: ``(id, action, codes, line)`` of the rows ``rows`` reads,
        ``line`` the exact text ``records`` and the writer give them."""
        return _entries(query, settled, *_selected('id', 'action', 'codes'), pg_sql.line(format, [
            (name, _KINDS[name], column) for name, column in audit.columns()]))

    @staticmethod
    def line_tally(query):
        return run.Tally(audit.ACTIONS, 0, int)

    @staticmethod
    def count_lines(tally, batch):
        sums = tally.sums
        for _, action, codes, _ in batch:
            sums[action] += codes
        tally.extend(len(batch), batch[0][0], batch[-1][0])

    @staticmethod
    def records(db, batch):
        return [dict(zip(COLUMNS, (row[0], formats.stamp(row[1]), *row[2:]))) for row in batch]

    @staticmethod
    def tally(query):
        return run.Tally(audit.ACTIONS, 0, int)

    @staticmethod
    def count(tally, record):
        tally.add(record['id'], record['action'], int(record['codes']))

    @staticmethod
    def figures(db, query, settled):
        """Every brand the rows touch: codes generated and claimed before
        ``date-start`` (opening) and up to the end of ``date-end`` (closing)."""
        found = []
        for batch in run.batches(db, audit.brand_figures(query.start, query.end, query.uid,
                                                         up_to=settled), name='brands'):
            for brand_id, generated, claimed, generated_by_end, claimed_by_end in batch:
                found.append({'brand_id': brand_id, 'opening_generated': int(generated),
                              'opening_claimed': int(claimed),
                              'closing_generated': int(generated_by_end),
                              'closing_claimed': int(claimed_by_end)})
        return {'brands': found}


DISCOUNTS = DiscountsSource()
