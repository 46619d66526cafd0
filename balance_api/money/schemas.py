"""The money API's request and response schemas (marshmallow).

Each input field names the error its bad values get (``Coded``), so a
request with several bad fields is answered for the first of them in
declaration order (``balance_api.web.validation.load``).
"""
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, post_load, validate

from ..web.media import FormText
from ..web.validation import Coded
from . import errors
from .amounts import format_amount, parse_amount

MAX_USER_ID = 2 ** 63 - 1
_USER_ID_PATTERN = re.compile(r'[1-9][0-9]{0,18}', re.ASCII)
_MSISDN_PATTERN = re.compile(r'\+?[0-9]{6,15}', re.ASCII)
# For the OpenAPI document. A request's amount (money.parse_amount): 1 to 17
# integer digits without a leading zero, at most 2 decimals, not zero. A
# response's (format_amount): always 2 decimals.
AMOUNT_REQUEST_PATTERN = r'^(?!0(\.0{1,2})?$)(0|[1-9][0-9]{0,16})(\.[0-9]{1,2})?$'
AMOUNT_RESPONSE_PATTERN = r'^[0-9]{1,17}\.[0-9]{2}$'


def parse_user_id(value):
    """A positive integer that fits BIGINT, from a string or JSON integer, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not _USER_ID_PATTERN.fullmatch(value):
        return None
    user_id = int(value)
    return user_id if user_id <= MAX_USER_ID else None


def _blank_as_none(value):
    # Before validation: an empty optional text is none given, not a malformed one.
    return None if value == '' else value


class UserId(Coded, fields.Integer):
    error_class = errors.InvalidUserId

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault('description', 'Positive integer that fits a signed 64-bit integer.')
        metadata.setdefault('minimum', 1)
        metadata.setdefault('maximum', MAX_USER_ID)
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        # A form carries every value as text; JSON has integers, so a JSON
        # string "22" is a client sending the wrong type, not a user id.
        if isinstance(value, str) and not isinstance(value, FormText):
            raise ValidationError('a user id in JSON is an integer')
        user_id = parse_user_id(value)
        if user_id is None:
            raise ValidationError('not a user id')
        return user_id


class Amount(Coded, fields.Field):
    """Money: a positive decimal with at most 17 integer digits and 2 decimals."""
    error_class = errors.InvalidAmount

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault('description', 'Decimal amount as a string, two decimals in responses.')
        metadata.setdefault('example', '32.40')
        metadata.setdefault('pattern', AMOUNT_RESPONSE_PATTERN)
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_amount(value)

    def _deserialize(self, value, attr, data, **kwargs):
        amount = parse_amount(value)
        if amount is None:
            raise ValidationError('not an amount')
        return amount


class Operation(Coded, fields.String):
    error_class = errors.OperationMismatch

    def __init__(self, **kwargs):
        super().__init__(validate=validate.OneOf(['add', 'sub']), **kwargs)


def _storable_text(text):
    # PostgreSQL text cannot hold NUL, and a lone surrogate (JSON "\ud800") has no UTF-8 form.
    if '\x00' in text:
        raise ValidationError('text contains NUL')
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        raise ValidationError('text is not valid Unicode') from None


class Description(Coded, fields.String):
    error_class = errors.InvalidDescription

    def __init__(self, **kwargs):
        metadata = kwargs.setdefault('metadata', {})
        metadata.setdefault(
            'description', 'Free text; when empty, a unique 32-hex transaction hash is generated.')
        # What _storable_text refuses and a pattern can say.
        metadata.setdefault('pattern', '^[^\\u0000]*$')
        # An empty description asks for a generated hash, as a missing one
        # does: the same request, also to an Idempotency-Key.
        super().__init__(validate=[validate.Length(max=255), _storable_text], load_default=None,
                         pre_load=_blank_as_none, **kwargs)


class Email(Coded, fields.Email):
    error_class = errors.InvalidContact

    def __init__(self, **kwargs):
        kwargs.setdefault('load_default', None)
        super().__init__(validate=validate.Length(max=254), pre_load=_blank_as_none, **kwargs)


class Msisdn(Coded, fields.String):
    error_class = errors.InvalidContact

    def __init__(self, **kwargs):
        kwargs.setdefault('load_default', None)
        super().__init__(pre_load=_blank_as_none,
                         metadata={'description': '6 to 15 digits, optionally after "+".',
                                   'pattern': '^' + _MSISDN_PATTERN.pattern + '$'},
                         **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        # fullmatch: validate.Regexp would accept anything that merely starts right.
        msisdn = super()._deserialize(value, attr, data, **kwargs)
        if not _MSISDN_PATTERN.fullmatch(msisdn):
            raise ValidationError('not an msisdn')
        return msisdn


class Restore(Coded, fields.Boolean):
    """true or false: JSON's booleans, or that text in a form (nothing looser,
    such as 1 or yes: a typo must not re-open an account)."""
    error_class = errors.InvalidRestore

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        if isinstance(value, FormText) and value in ('true', 'false'):
            return value == 'true'
        raise ValidationError('not true or false')


# -- requests --------------------------------------------------------------

# JSON numbers count as written: 12345e-2 is no amount, as the string is none.
_REQUEST_AMOUNT = {'pattern': AMOUNT_REQUEST_PATTERN,
                   'description': 'Decimal amount as a string; in JSON also a number written '
                                  'the same way (never with an exponent).'}

class CreateUserRequest(Schema):
    uid = UserId(required=True)
    email = Email()
    msisdn = Msisdn()
    restore = Restore(load_default=missing, metadata={
        'description': "true re-opens a deleted user's account: the same id and history, "
                       'a zero balance. Without it a deleted id is refused (543).'})

    @post_load
    def _restore_false_is_no_restore(self, data, **kwargs):
        # The same request to an Idempotency-Key as one that leaves it out.
        if data.get('restore') is False:
            del data['restore']
        return data


class UpdateContactRequest(Schema):
    """A field left out stays as it is; an empty one clears it."""
    email = Email(load_default=missing, allow_none=True)
    msisdn = Msisdn(load_default=missing, allow_none=True)


class BalanceChangeRequest(Schema):
    operation = Operation(required=True)
    balance = Amount(required=True, metadata=dict(_REQUEST_AMOUNT))
    trans_desc = Description()


class TransferRequest(Schema):
    sender_id = UserId(required=True)
    receiver_id = UserId(required=True)
    balance = Amount(required=True, metadata=dict(_REQUEST_AMOUNT))
    trans_desc = Description()


# -- responses -------------------------------------------------------------

class BalanceResponse(Schema):
    user_id = fields.Integer(required=True)
    balance = Amount(required=True)


class ContactResponse(Schema):
    user_id = fields.Integer(required=True)
    email = fields.String(required=True, allow_none=True)
    msisdn = fields.String(required=True, allow_none=True)


class MessageResponse(Schema):
    code = fields.Integer(required=True, metadata={'example': 0})
    message = fields.String(required=True)


class HistoryRow(Schema):
    class Meta:
        unknown = EXCLUDE
        ordered = True

    id = fields.Integer(required=True)
    date = fields.String(required=True, metadata={'example': '2016-03-20 14:02:11',
                                                  'description': 'UTC, YYYY-MM-DD HH:MM:SS'})
    receiver_id = fields.Integer(required=True)
    sum = Amount(required=True)
    operation = fields.String(required=True, validate=validate.OneOf(
        ['user_add', 'user_delete', 'balance_add', 'balance_sub', 'balance_transfer']))
    transaction_description = fields.String(required=True)
    sender_id = fields.Integer(required=True)


def balance_body(balance):
    """A ``Balance`` as BalanceResponse renders it, built directly: every change
    answers with one or two, and the schema's dump costs a twentieth of a
    transfer's work in the worker."""
    return {'user_id': balance.user_id, 'balance': format_amount(balance.balance)}
