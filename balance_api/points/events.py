"""A member's points events in one club, newest first, filtered, as database-written JSON.

Paging goes backwards: ``before_id`` is the smallest ``id`` seen. A member's
entries are written under the member's lock, so they commit in id order:
whatever a read sees of one member is every entry up to its newest, and
paging with ``before_id`` never skips one.
"""
import datetime
import re
from typing import NamedTuple, Optional
from urllib.parse import parse_qsl

import peewee

from ..money import members
from ..money.errors import UserNotFound
from ..storage import sql_json
from ..storage.db import is_postgres
from . import errors
from .ledger import GRANTING
from .models import PointsClub, PointsEntry

TEXT_FILTERS = ('event', 'message', 'wallet', 'receipt_id', 'store_id')
KEYS = ('type',) + TEXT_FILTERS + ('amount', 'date-start', 'date-end', 'limit', 'before_id')
TYPES = ('issue_points', 'use_points', 'revoke_points', 'expire_points')
MAX_FILTER_LENGTH = 1024
_DATE = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}', re.ASCII)
_AMOUNT = re.compile(r'-?(0|[1-9][0-9]{0,14})', re.ASCII)
_COUNT = re.compile(r'[1-9][0-9]{0,18}', re.ASCII)
_MAX_COUNT = 2 ** 63 - 1


class EventsQuery(NamedTuple):
    type: Optional[str] = None
    text: tuple = ()  # (column name, value)
    amount: Optional[int] = None
    date_start: Optional[datetime.date] = None
    date_end: Optional[datetime.date] = None
    limit: Optional[int] = None
    before_id: Optional[int] = None


def parse_query(query_string):
    values = {}
    for key, value in parse_qsl(query_string or '', keep_blank_values=True):
        if key not in KEYS or key in values:
            raise errors.UnknownEventsKey()
        values[key] = value
    kind = values.get('type')
    if kind is not None and kind not in TYPES:
        raise errors.InvalidEventsFilter()
    text = []
    for name in TEXT_FILTERS:
        if name in values:
            if '\x00' in values[name] or len(values[name]) > MAX_FILTER_LENGTH:
                raise errors.InvalidEventsFilter()
            text.append((name, values[name]))
    amount = values.get('amount')
    if amount is not None:
        if not _AMOUNT.fullmatch(amount):
            raise errors.InvalidEventsFilter()
        amount = int(amount)
    return EventsQuery(kind, tuple(text), amount, _date(values.get('date-start')),
                       _date(values.get('date-end')), _count(values.get('limit')),
                       _count(values.get('before_id')))


def _date(text):
    if text is None:
        return None
    if not _DATE.fullmatch(text):
        raise errors.InvalidEventsDate()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise errors.InvalidEventsDate() from None


def _count(text):
    if text is None:
        return None
    if not _COUNT.fullmatch(text) or int(text) > _MAX_COUNT:
        raise errors.InvalidEventsPaging()
    return int(text)


def _constant(text):
    return peewee.Value(text, converter=False)


def _type_of_entry():
    """The v3 kind of an entry: an ``other`` one by its sign."""
    return peewee.Case(None, [
        (PointsEntry.event_type.in_(GRANTING), _constant('issue_points')),
        (PointsEntry.event_type == 'use', _constant('use_points')),
        (PointsEntry.event_type == 'revoke', _constant('revoke_points')),
        (PointsEntry.event_type == 'expire', _constant('expire_points')),
        (PointsEntry.amount > 0, _constant('issue_points')),
    ], _constant('use_points'))


def _of_type(kind):
    if kind == 'issue_points':
        return PointsEntry.event_type.in_(GRANTING) | (
            (PointsEntry.event_type == 'other') & (PointsEntry.amount > 0))
    if kind == 'use_points':
        return (PointsEntry.event_type == 'use') | (
            (PointsEntry.event_type == 'other') & (PointsEntry.amount < 0))
    return PointsEntry.event_type == kind.split('_')[0]


def _nullable_string(db, column):
    # PostgreSQL's to_json(NULL) is NULL, which would blank the whole row.
    return [peewee.fn.COALESCE(sql_json.string(db, column)[0], _constant('null'))]


def _iso_moment(db, column):
    if is_postgres(db):
        return ['"', peewee.fn.to_char(column, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '"']
    # SQLite holds "YYYY-MM-DD HH:MM:SS[.ffffff]" text.
    return ['"', peewee.fn.substr(column, 1, 10), 'T', peewee.fn.substr(column, 12, 8), 'Z"']


def statement(member_id, club, query, db):
    """What ``balance_api.web.streaming.respond`` runs: a function of ``at_most``
    giving ``(sql, params)``; an unknown member is a 509 before any row is read."""
    def rows(at_most):
        if members.find(member_id=member_id) is None:
            raise UserNotFound()
        return select(member_id, club, query, db, at_most)
    return rows


def select(member_id, club, query, db, at_most=None):
    row = sql_json.json_object([
        ('id', sql_json.number(PointsEntry.id)),
        ('member_id', sql_json.number(PointsEntry.member_id)),
        ('date', _iso_moment(db, PointsEntry.event_at)),
        ('type', ['"', _type_of_entry(), '"']),
        ('wallet', sql_json.string(db, PointsEntry.wallet)),
        ('amount', sql_json.number(PointsEntry.amount)),
        ('wallet_new_balance', sql_json.number(PointsEntry.balance_after)),
        ('store_id', _nullable_string(db, PointsEntry.store_id)),
        ('receipt_id', _nullable_string(db, PointsEntry.receipt_id)),
        ('event', _nullable_string(db, PointsEntry.event)),
        ('message', _nullable_string(db, PointsEntry.message)),
    ])
    club_id = PointsClub.select(PointsClub.id).where(PointsClub.slug == club)
    entries = PointsEntry.select(row).where((PointsEntry.member_id == member_id)
                                            & (PointsEntry.club == club_id))
    if query.type is not None:
        entries = entries.where(_of_type(query.type))
    for name, value in query.text:
        entries = entries.where(getattr(PointsEntry, name) == value)
    if query.amount is not None:
        entries = entries.where(PointsEntry.amount == query.amount)
    if query.date_start is not None:
        entries = entries.where(PointsEntry.event_at >= _day_start(query.date_start))
    if query.date_end is not None and query.date_end < datetime.date.max:
        entries = entries.where(
            PointsEntry.event_at < _day_start(query.date_end + datetime.timedelta(days=1)))
    if query.before_id is not None:
        entries = entries.where(PointsEntry.id < query.before_id)
    limit = query.limit
    if at_most is not None and (limit is None or at_most < limit):
        limit = at_most
    entries = entries.order_by(PointsEntry.id.desc())
    if limit is not None:
        entries = entries.limit(limit)
    return entries.sql()


def _day_start(day):
    return datetime.datetime.combine(day, datetime.time())
