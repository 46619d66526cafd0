"""The filters of an export, read from its query string."""
import datetime
import re
from typing import NamedTuple, Optional, Tuple
from urllib.parse import parse_qsl

from ..money.schemas import parse_user_id
from . import errors

OPERATIONS = ('user_add', 'user_delete', 'balance_add', 'balance_sub', 'balance_transfer')
FORMATS = ('csv', 'jsonl')
_DATE = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}', re.ASCII)


class ExportQuery(NamedTuple):
    """What an export covers: the UTC days ``date_start`` to ``date_end``,
    both inclusive; ``uid`` (a user, or a points member); ``kinds`` (journal
    operations or points event types; empty: all)."""
    date_start: datetime.date
    date_end: datetime.date
    uid: Optional[int] = None
    kinds: Tuple[str, ...] = ()
    format: str = 'csv'

    @property
    def start(self):
        """The first moment covered (naive UTC)."""
        return datetime.datetime.combine(self.date_start, datetime.time())

    @property
    def end(self):
        """The first moment after the range (naive UTC), None past the last day Python knows."""
        if self.date_end >= datetime.date.max:
            return None
        return datetime.datetime.combine(self.date_end + datetime.timedelta(days=1),
                                         datetime.time())

    def parameters(self, kind_key):
        """The filters as a manifest states them."""
        return {'date-start': self.date_start.isoformat(), 'date-end': self.date_end.isoformat(),
                'uid': self.uid, kind_key: list(self.kinds), 'format': self.format}

    def filename(self, stem):
        name = '%s-%s-%s' % (stem, self.date_start.isoformat(), self.date_end.isoformat())
        if self.uid is not None:
            name += '-uid-%d' % self.uid
        return name + '.' + self.format


def parse(query_string, kind_key=None, kinds=(), formats=True, uid=True):
    """An ``ExportQuery`` from a query string. ``kind_key`` names the
    repeatable filter (``operation``, ``event_type``) and ``kinds`` its values;
    without ``formats`` and ``uid`` there are no such keys (reconciliation)."""
    keys = {'date-start', 'date-end'}
    if uid:
        keys.add('uid')
    if formats:
        keys.add('format')
    values, chosen = {}, []
    for key, value in parse_qsl(query_string or '', keep_blank_values=True):
        if kind_key is not None and key == kind_key:
            if value not in kinds:
                raise _kind_error(kind_key)()
            if value not in chosen:
                chosen.append(value)
            continue
        if key not in keys or key in values:
            raise errors.UnknownExportKey()
        values[key] = value
    return build(values.get('date-start'), values.get('date-end'), values.get('uid'),
                 tuple(chosen), values.get('format', 'csv'))


def build(date_start, date_end, uid=None, kinds=(), format='csv'):
    """An ``ExportQuery`` from the texts given (the command line's way in)."""
    start, end = _date(date_start), _date(date_end)
    if start > end:
        raise errors.InvalidExportRange()
    if uid is not None:
        uid = parse_user_id(uid)
        if uid is None:
            raise errors.InvalidExportUid()
    if format not in FORMATS:
        raise errors.InvalidExportFormat()
    return ExportQuery(start, end, uid, tuple(kinds), format)


def _kind_error(kind_key):
    return errors.InvalidExportOperation if kind_key == 'operation' else errors.InvalidExportEventType


def _date(text):
    if text is None or not _DATE.fullmatch(text):
        raise errors.InvalidExportDate()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise errors.InvalidExportDate() from None

