"""The discount codes' request schemas (marshmallow), each field with its error code."""
import re

from marshmallow import Schema, ValidationError, fields

from ..money.schemas import MAX_USER_ID, parse_user_id
from ..web.validation import Coded
from . import errors
from .service import MAX_CODES

MAX_BRAND_ID = MAX_USER_ID
_COUNT_TEXT = re.compile(r'[1-9][0-9]{0,6}', re.ASCII)


def parse_id(value):
    """A positive integer that fits BIGINT (a JSON integer or its decimal text), or None."""
    return parse_user_id(value)


def parse_number_of_codes(value):
    """1 to MAX_CODES, from a JSON integer or its decimal text (what a form
    sends, and what some JSON clients send too), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _COUNT_TEXT.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 1 <= number <= MAX_CODES else None


def brand_id(text):
    """A path's brand id, or the coded error."""
    found = parse_id(text)
    if found is None:
        raise errors.InvalidBrandId()
    return found


def user_id(text):
    """A path's (or query's) user id, or the coded error."""
    found = parse_id(text)
    if found is None:
        raise errors.InvalidDiscountUserId()
    return found


class BrandId(Coded, fields.Field):
    error_class = errors.InvalidBrandId

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault('description', 'The brand: a positive integer that fits a signed '
                                           '64-bit integer; created by its first generation.')
        metadata.setdefault('minimum', 1)
        metadata.setdefault('maximum', MAX_BRAND_ID)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        found = parse_id(value)
        if found is None:
            raise ValidationError('not a brand id')
        return found


class NumberOfCodes(Coded, fields.Field):
    error_class = errors.InvalidNumberOfCodes

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault('description', 'How many new codes: 1 to %d.' % MAX_CODES)
        metadata.setdefault('minimum', 1)
        metadata.setdefault('maximum', MAX_CODES)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        found = parse_number_of_codes(value)
        if found is None:
            raise ValidationError('not a number of codes')
        return found


class GenerateRequest(Schema):
    brand_id = BrandId(required=True)
    number_of_codes = NumberOfCodes(required=True)
