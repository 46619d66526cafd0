"""The loyalty clubs' v3 API: batches of points transactions, balances per wallet, events.

A batch is validated whole before anything runs: one malformed item makes
the request a 422 ``{"error": "Invalid format", "details": {...}}`` naming
every bad field by its index, the form the loyalty platform's clients read.
A well-formed batch runs in one transaction, every member locked first in
ascending id order, and each item gets a status; a refused item writes
nothing (the engine checks every rule before writing).
"""
import datetime
import json
import re

import falcon
from marshmallow import Schema, ValidationError, fields, validate

from ..auth import permits
from ..clock import utc_now
from ..money import members
from ..money.errors import InvalidUserId, UserNotFound
from ..money.schemas import parse_user_id
from ..storage.db import write_transaction
from ..web.commands import AnswersHead, read_body
from ..web.idempotency import Outcome
from ..web.streaming import respond
from . import errors, events
from .ledger import EVENT_TYPES, MAX_BALANCE, Details
from .models import DEFAULT_WALLET
from .schemas import MAX_POINTS, Moment, Name

MAX_ITEMS = 1000
MAX_PROPERTIES_BYTES = 4096
IDENTIFIER_TYPES = ('id', 'msisdn', 'email')
CLUB_PATTERN = r'[a-z0-9][a-z0-9_-]{0,63}'
_CLUB = re.compile(CLUB_PATTERN, re.ASCII)
_DATE = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}', re.ASCII)
MEMBER_NOT_FOUND = 'Member does not exist'
OK = 'ok'
# The engine's refusals an item may get, answered as that item's status.
_REFUSALS = (errors.IncorrectAmountSign, errors.NotEnoughPoints, errors.DuplicateTransaction,
             errors.PointsBalanceOverflow)
STATUSES = (OK, MEMBER_NOT_FOUND) + tuple(refusal.message for refusal in _REFUSALS)


def club_slug(text):
    if not _CLUB.fullmatch(text):
        raise errors.InvalidClub()
    return text


# -- the batch's items -----------------------------------------------------

def _storable(text):
    # PostgreSQL text cannot hold NUL, and a lone surrogate has no UTF-8 form.
    if '\x00' in text:
        raise ValidationError('text contains NUL')
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        raise ValidationError('text is not valid Unicode') from None


class _Text(fields.String):
    def __init__(self, max_length, min_length=0, **kwargs):
        kwargs.setdefault('allow_none', True)
        super().__init__(validate=[validate.Length(min=min_length, max=max_length), _storable],
                         **kwargs)


def _whole_number(value, largest):
    return (isinstance(value, int) and not isinstance(value, bool)
            and abs(value) <= largest)


class _Amount(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if not _whole_number(value, MAX_POINTS) or value == 0:
            raise ValidationError('a whole number other than 0, at most 15 digits')
        return value


class _ReportedPoints(fields.Field):
    """A balance an integration reported: kept as it came, never used."""

    def __init__(self, **kwargs):
        super().__init__(allow_none=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not _whole_number(value, MAX_BALANCE):
            raise ValidationError('a whole number, at most 18 digits')
        return value


class _Identifier(fields.Field):
    """A member's id, msisdn or email: text, or a JSON integer for an id."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, str) or not 1 <= len(value) <= 255:
            raise ValidationError('text of 1 to 255 characters, or an integer')
        _storable(value)
        return value


class _EventDate(Moment):
    def __init__(self, **kwargs):
        super().__init__(allow_none=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except OverflowError:
            # Year 1 or 9999 moved out of range by its offset.
            raise ValidationError('not a time') from None


class _Day(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise ValidationError('a date, YYYY-MM-DD')
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise ValidationError('a date, YYYY-MM-DD') from None


class _Properties(fields.Dict):
    def __init__(self, **kwargs):
        super().__init__(allow_none=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        properties = super()._deserialize(value, attr, data, **kwargs)
        if len(_json_text(properties).encode('utf-8')) > MAX_PROPERTIES_BYTES:
            raise ValidationError('at most %d bytes as JSON' % MAX_PROPERTIES_BYTES)
        return properties


def _json_text(value):
    return json.dumps(value, sort_keys=True, separators=(',', ':'), default=str)


class PointsTransactionItem(Schema):
    """One item of a v3 batch (unknown fields are refused)."""
    identifier_type = fields.String(required=True, validate=validate.OneOf(IDENTIFIER_TYPES))
    identifier = _Identifier(required=True)
    event_type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    amount = _Amount(required=True)
    event = _Text(255)
    message = _Text(1024)
    store_id = _Text(255)
    receipt_id = _Text(255)
    transaction_id = _Text(255, min_length=1)
    event_date = _EventDate()
    wallet = Name(allow_none=True)
    expiry_points_date = _Day(allow_none=True)
    expiry_points_balance = _ReportedPoints()
    wallet_new_balance = _ReportedPoints()
    additional_properties = _Properties()


_item = PointsTransactionItem()


class InvalidFormat(Exception):
    """A malformed batch: ``details`` name each bad field, ``[index].field``."""

    def __init__(self, details):
        super().__init__(details)
        self.details = details

    def answer(self):
        return {'error': 'Invalid format', 'details': self.details}


def _first_message(messages):
    while isinstance(messages, (list, dict)) and messages:
        messages = messages[0] if isinstance(messages, list) else next(iter(messages.values()))
    return str(messages)


def parse_batch(body):
    """The batch's items, validated; raises InvalidFormat naming every bad field."""
    if not isinstance(body, list):
        raise InvalidFormat({'body': 'must be a JSON array of transactions'})
    if len(body) > MAX_ITEMS:
        raise InvalidFormat({'body': 'at most %d transactions' % MAX_ITEMS})
    items, details = [], {}
    for index, item in enumerate(body):
        if not isinstance(item, dict):
            details['[%d]' % index] = 'must be a JSON object'
            continue
        try:
            items.append(_item.load(item))
        except ValidationError as exc:
            for name, messages in sorted(exc.messages.items()):
                details['[%d].%s' % (index, name)] = _first_message(messages)
    if details:
        raise InvalidFormat(details)
    return items


def read_batch(req):
    """The request's JSON body; undecodable JSON is a malformed batch too."""
    try:
        body = read_body(req)
    except falcon.MediaMalformedError as exc:
        raise InvalidFormat({'body': 'not valid JSON'}) from exc
    return parse_batch(body)


# -- applying a batch -------------------------------------------------------

def find_member(identifier_type, identifier):
    """The member an item or a look-up names, or None."""
    if identifier_type == 'id':
        member_id = parse_user_id(identifier)
        return None if member_id is None else members.find(member_id=member_id)
    if not isinstance(identifier, str):
        return None
    return members.find(**{identifier_type: identifier})


def _details(item, key_name=None):
    reported = {name: item.get(name) for name in
                ('wallet_new_balance', 'expiry_points_date', 'expiry_points_balance')
                if item.get(name) is not None}
    if 'expiry_points_date' in reported:
        reported['expiry_points_date'] = reported['expiry_points_date'].isoformat()
    return Details(event=item.get('event'), message=item.get('message'),
                   store_id=item.get('store_id'), receipt_id=item.get('receipt_id'),
                   properties=item.get('additional_properties'), reported=reported or None,
                   key_name=key_name)


def apply_batch(ledger, club, items, now, key_name=None):
    """Post every item in one transaction; returns each item's feedback, in order."""
    with write_transaction(ledger.db):
        found = [find_member(item['identifier_type'], item['identifier']) for item in items]
        present = [member for member in found if member is not None]
        if present:
            ledger.lock_members(present)
        ledger.lock_transaction_ids(club, [item['transaction_id'] for item in items
                                           if item.get('transaction_id') is not None])
        feedback = []
        for item, member in zip(items, found):
            status = OK
            try:
                if member is None:
                    raise UserNotFound()
                # v3 names no payer: a negative item is a spend across the wallet's payers.
                ledger.post(member, item['amount'], event_type=item['event_type'],
                            event_at=item.get('event_date') or now, club=club,
                            wallet=item.get('wallet') or DEFAULT_WALLET,
                            transaction_id=item.get('transaction_id'),
                            details=_details(item, key_name))
            except UserNotFound:
                status = MEMBER_NOT_FOUND
            except _REFUSALS as refusal:
                status = refusal.message
            feedback.append({'event_type': item['event_type'], 'amount': item['amount'],
                             'status': status})
        return feedback


# -- resources -------------------------------------------------------------

class ClubTransactions:
    """POST /v3/{club}/transactions/points: a batch of points transactions."""

    permits = {'POST': permits.POINTS_CREATE}

    # 1,000 items of a few hundred bytes each, with room for their
    # additional properties.
    max_body_bytes = 4 * 1024 * 1024

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_post(self, req, resp, club):
        club = club_slug(club)
        try:
            items = read_batch(req)
        except InvalidFormat as malformed:
            resp.status = 422
            resp.media = malformed.answer()
            return

        caller = req.context.caller
        if caller.uid is not None:
            # Every item must be the bound user's: an unknown one is not it either.
            caller.check_users(find_member(item['identifier_type'], item['identifier'])
                               for item in items)

        def apply():
            # A retry is the same batch: items without an event_date are dated as the first was.
            return Outcome(200, apply_batch(self.ledger, club, items, utc_now(),
                                            key_name=caller.key_name))

        self.commands.run(req, resp, {'items': items}, apply, {'club': club})


class MemberWallets(AnswersHead):
    """GET /v3/{club}/transactions/points/by_member_id/{member_id} (by_msisdn, by_email):
    points per wallet."""

    permits = {'GET': permits.POINTS_GET}

    def __init__(self, ledger, identifier_type, parameter):
        self.ledger = ledger
        self.identifier_type = identifier_type
        self.parameter = parameter

    def on_get(self, req, resp, club, **path):
        club = club_slug(club)
        identifier = path[self.parameter]
        if self.identifier_type == 'id' and parse_user_id(identifier) is None:
            raise InvalidUserId()
        member = find_member(self.identifier_type, identifier)
        # Before "no such member": a bound key learns nothing of other users.
        req.context.caller.check_user(member)
        if member is None:
            raise UserNotFound()
        resp.media = self.ledger.wallet_balances(member, club)


class MemberEvents(AnswersHead):
    """GET /v3/{club}/transactions/points/events/{member_id}: newest first, streamed."""

    permits = {'GET': permits.POINTS_LIST}

    # Validation needs no database; the stream opens its own connection.
    uses_database = False

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, club, member_id):
        club = club_slug(club)
        member = parse_user_id(member_id)
        if member is None:
            raise InvalidUserId()
        req.context.caller.check_user(member)
        query = events.parse_query(req.query_string)
        respond(resp, self.db, events.statement(member, club, query, self.db))
