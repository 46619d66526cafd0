"""The points APIs' request schemas (marshmallow), each field with its error code."""
import datetime
import re

from marshmallow import Schema, ValidationError, fields

from ..web.media import FormText
from ..web.validation import Coded
from . import errors

MAX_POINTS = 10 ** 15 - 1
# Text from a form is always a string; JSON must send a number.
_POINTS_TEXT = re.compile(r'-?[1-9][0-9]{0,14}', re.ASCII)
# 1 to 64 characters, no control characters (names go into hashes and
# logs), no space at either end.
NAME_PATTERN = r'[^\x00-\x20\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,62}[^\x00-\x20\x7f-\x9f])?'
_NAME = re.compile(NAME_PATTERN)


def parse_points(value):
    """A whole number other than zero, of at most 15 digits, or None.

    JSON integers (not booleans, not 1.5, not 1e3, not the string "10")
    and, from forms, their decimal text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value and abs(value) <= MAX_POINTS else None
    if isinstance(value, FormText) and _POINTS_TEXT.fullmatch(value):
        return int(value)
    return None


class Points(Coded, fields.Field):
    error_class = errors.InvalidPoints

    def __init__(self, positive=False, **kwargs):
        self.positive = positive
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault('description', 'A whole number other than 0, at most 15 digits '
                                           '(in a form, its decimal text).')
        metadata.setdefault('minimum', 1 if positive else -MAX_POINTS)
        metadata.setdefault('maximum', MAX_POINTS)
        if not positive:
            metadata.setdefault('not', {'enum': [0]})
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        points = parse_points(value)
        if points is None or (self.positive and points < 0):
            raise ValidationError('not points')
        return points


class Spend(Points):
    error_class = errors.InvalidSpend

    def __init__(self, **kwargs):
        super().__init__(positive=True, **kwargs)


class Name(Coded, fields.String):
    """A payer, wallet or club name."""
    error_class = errors.InvalidPayer

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault('pattern', '^%s$' % NAME_PATTERN)
        metadata.setdefault('minLength', 1)
        metadata.setdefault('maxLength', 64)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _NAME.fullmatch(text):
            raise ValidationError('not a name')
        return text


class Moment(Coded, fields.Field):
    """An ISO 8601 time; with an offset converted to UTC, without one read as UTC."""
    error_class = errors.InvalidTimestamp

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault('example', '2022-10-31T10:00:00Z')
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or 'T' not in value.upper():
            raise ValidationError('not a time')
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError('not a time') from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return moment


class AddPointsRequest(Schema):
    payer = Name(required=True)
    points = Points(required=True)
    timestamp = Moment(load_default=None)


class SpendPointsRequest(Schema):
    points = Spend(required=True)


def format_moment(moment):
    """A stored time as the API shows it: ISO 8601 UTC with a Z."""
    return moment.strftime('%Y-%m-%dT%H:%M:%S') + (
        '.%06dZ' % moment.microsecond if moment.microsecond else 'Z')
