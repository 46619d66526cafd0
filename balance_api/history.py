"""History: the audit journal filtered by user and UTC day, streamed in id order."""
import datetime
import re
from typing import NamedTuple, Optional
from urllib.parse import parse_qsl

from peewee import fn

from . import errors
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


def select(query, ids_precede_commit=False):
    """The journal rows matching ``query``, ordered by id, as a lazy query.

    With a uid, the account's postings are read through their
    (account, created_at) index and joined to their entries, so only the
    returned rows are read; without one, the journal's created_at index or
    its primary key serves. Where the database hands out ids before commit
    (PostgreSQL), pages stay gap-free under concurrent writers.
    """
    columns = (JournalEntry.id, JournalEntry.created_at, JournalEntry.receiver_id,
               JournalEntry.amount, JournalEntry.operation,
               JournalEntry.transaction_description, JournalEntry.sender_id)
    if query.uid is not None:
        moment = Posting.created_at
        rows = (JournalEntry.select(*columns)
                .join(Posting, on=(Posting.journal == JournalEntry.id))
                .where(Posting.account == query.uid))
    else:
        moment = JournalEntry.created_at
        rows = JournalEntry.select(*columns)
    if query.date_start is not None:
        rows = rows.where(moment >= _day_start(query.date_start))
    if query.date_end is not None and query.date_end < datetime.date.max:
        rows = rows.where(moment < _day_start(query.date_end + datetime.timedelta(days=1)))
    if query.after_id:
        rows = rows.where(JournalEntry.id > query.after_id)
    if ids_precede_commit and (query.limit is not None or query.after_id is not None):
        # Ids are handed out before commit: a page must not include a row
        # whose smaller-id neighbour may still commit, or the next page
        # (after_id = this page's last id) would never show that neighbour.
        rows = rows.where(JournalEntry.txid < fn.pg_snapshot_xmin(fn.pg_current_snapshot()))
    rows = rows.order_by(JournalEntry.id)
    if query.limit is not None:
        rows = rows.limit(query.limit)
    return rows.tuples()
