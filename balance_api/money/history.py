"""History: the audit journal filtered by user and UTC day, streamed in id order."""
import datetime
import re
from typing import NamedTuple, Optional
from urllib.parse import parse_qsl

from ..storage import sql_json
from ..storage.db import is_postgres
from . import errors, pg_sql
from .models import JournalEntry, Posting
from .schemas import parse_user_id

KEYS = ('uid', 'date-start', 'date-end', 'limit', 'after_id')
_DATE_PATTERN = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}', re.ASCII)
_COUNT_PATTERN = re.compile(r'0|[1-9][0-9]{0,18}', re.ASCII)
_MAX_COUNT = 2 ** 63 - 1


class HistoryQuery(NamedTuple):
    uid: Optional[int] = None
    date_start: Optional[datetime.date] = None
    date_end: Optional[datetime.date] = None
    limit: Optional[int] = None
    after_id: Optional[int] = None


def parse_query(*query_strings):
    """Read history filters from query strings (the path form and/or the real one)."""
    values = {}
    for query_string in query_strings:
        for key, value in parse_qsl(query_string or '', keep_blank_values=True):
            if key not in KEYS or key in values:
                raise errors.UnknownHistoryKey()
            values[key] = value

    uid = None
    if 'uid' in values:
        uid = parse_user_id(values['uid'])
        if uid is None:
            raise errors.InvalidUserId()
    start = _date(values.get('date-start'))
    end = _date(values.get('date-end'))
    if start and end and start > end:
        raise errors.InvalidHistoryRange()
    limit = _count(values.get('limit'))
    if limit == 0:
        raise errors.InvalidPaging()
    return HistoryQuery(uid, start, end, limit, _count(values.get('after_id')))


def _date(text):
    if text is None:
        return None
    if not _DATE_PATTERN.fullmatch(text):
        raise errors.InvalidHistoryDate()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise errors.InvalidHistoryDate() from None


def _count(text):
    if text is None:
        return None
    if not _COUNT_PATTERN.fullmatch(text) or int(text) > _MAX_COUNT:
        raise errors.InvalidPaging()
    return int(text)


def _day_start(day):
    return datetime.datetime.combine(day, datetime.time())


def statement(query, db):
    """What ``balance_api.web.streaming.respond`` runs for ``query``: a function
    of ``at_most`` giving ``select``'s ``(sql, params)``.

    On PostgreSQL the first call (made with the connection open, before any
    transaction) learns how far the journal is settled, and every call reads
    only that far, so that no answer, paged or not, can hold a row whose
    smaller-id neighbour is still uncommitted and would later appear behind
    a client continuing with ``after_id``.
    """
    settled = []

    def rows(at_most):
        if is_postgres(db) and not settled:
            settled.append(pg_sql.settled_id(db))
        return select(query, db, at_most, settled[0] if settled else None)
    return rows


def select(query, db, at_most=None, settled_id=None):
    """``(sql, params)`` of the journal rows matching ``query``, ordered by
    id, one column of JSON text per row (see ``balance_api.web.streaming``);
    ``at_most`` caps the rows below the query's own limit, and on PostgreSQL
    rows above ``settled_id`` (``pg_sql.settled_id``) are left out.

    With a uid, the account's postings are read in journal id order
    through their (account, journal) index (or, for a date range, their
    (account, created_at) one) and each is joined to its entry, so only the
    returned rows are read; without one, the journal's created_at index or
    its primary key serves. PostgreSQL runs the same query written out in
    ``pg_sql.history``. SQLite commits one writer at a time, in id order,
    so whatever a reader sees is already a gap-free prefix.
    """
    start = _day_start(query.date_start) if query.date_start is not None else None
    end = None
    if query.date_end is not None and query.date_end < datetime.date.max:
        end = _day_start(query.date_end + datetime.timedelta(days=1))
    limit = query.limit
    if at_most is not None and (limit is None or at_most < limit):
        limit = at_most
    if is_postgres(db):
        return pg_sql.history(query.uid, start, end, query.after_id, limit, settled_id)
    row = sql_json.json_object([
        ('id', sql_json.number(JournalEntry.id)),
        ('date', sql_json.timestamp(db, JournalEntry.created_at)),
        ('receiver_id', sql_json.number(JournalEntry.receiver_id)),
        ('sum', sql_json.amount(db, JournalEntry.amount)),
        # A CHECK constraint keeps operations to five plain names.
        ('operation', sql_json.identifier(JournalEntry.operation)),
        ('transaction_description', sql_json.string(db, JournalEntry.transaction_description)),
        ('sender_id', sql_json.number(JournalEntry.sender_id)),
    ])
    if query.uid is not None:
        # The posting's journal id bounds and orders the rows, as on
        # PostgreSQL, so the index gives them in order.
        moment, key = Posting.created_at, Posting.journal
        rows = (JournalEntry.select(row)
                .join(Posting, on=(Posting.journal == JournalEntry.id))
                .where(Posting.account == query.uid))
    else:
        moment, key = JournalEntry.created_at, JournalEntry.id
        rows = JournalEntry.select(row)
    if start is not None:
        rows = rows.where(moment >= start)
    if end is not None:
        rows = rows.where(moment < end)
    if query.after_id:
        rows = rows.where(key > query.after_id)
    rows = rows.order_by(key)
    if limit is not None:
        rows = rows.limit(limit)
    return rows.sql()
