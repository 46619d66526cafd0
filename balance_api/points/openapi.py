"""The points APIs in the OpenAPI document (``balance_api.web.openapi``)."""
from .. import errors as base_errors
from ..money import errors as money_errors
from ..money.schemas import MAX_USER_ID
from ..web.openapi import BODY_ERRORS, IDEMPOTENCY_KEY, KEY_ERRORS, body, failures, form_schema
from . import errors, events, ledger, routes, schemas, v3

_UID = {'name': 'uid', 'in': 'path', 'required': True,
        'schema': {'type': 'integer', 'minimum': 1, 'maximum': MAX_USER_ID},
        'description': 'The member: a user of the money API.'}
_POINTS = {'type': 'integer', 'minimum': -schemas.MAX_POINTS, 'maximum': schemas.MAX_POINTS,
           'not': {'enum': [0]}}


def _object(description, properties, required=()):
    return {'description': description, 'content': {'application/json': {'schema': {
        'type': 'object', 'properties': properties, 'required': list(required)}}}}


def add_to_spec(spec, plugin):
    """The points APIs' schemas and operations."""
    plugin.map_to_openapi_type(schemas.Points, 'integer', None)
    plugin.map_to_openapi_type(schemas.Moment, 'string', 'date-time')
    for schema in (schemas.AddPointsRequest, schemas.SpendPointsRequest):
        spec.components.schema(schema.__name__, schema=schema)
        form_schema(spec, schema.__name__)
    entry = {'payer': {'type': 'string'}, 'points': _POINTS,
             'timestamp': {'type': 'string', 'format': 'date-time'}}
    spec.path('/points/{uid}/add', parameters=[_UID], operations={'post': {
        'summary': 'Points from a payer; a negative amount corrects that payer\'s oldest points',
        'parameters': [IDEMPOTENCY_KEY],
        'requestBody': body('AddPointsRequest'),
        'responses': {'201': _object('The stored entry', entry, entry), **failures(
            money_errors.InvalidUserId.code, money_errors.UserNotFound.code,
            errors.InvalidPoints.code, errors.InvalidPayer.code, errors.InvalidTimestamp.code,
            errors.NotEnoughPayerPoints.code, errors.UnknownPayer.code,
            errors.PointsBalanceOverflow.code, *BODY_ERRORS, *KEY_ERRORS)}}})
    spec.path('/points/{uid}/spend', parameters=[_UID], operations={'post': {
        'summary': 'Spend points, oldest first, across payers',
        'parameters': [IDEMPOTENCY_KEY],
        'requestBody': body('SpendPointsRequest'),
        'responses': {'200': {'description': 'Points taken from each payer, in the order drawn',
                              'content': {'application/json': {'schema': {
                                  'type': 'array', 'items': {
                                      'type': 'object', 'required': ['payer', 'points'],
                                      'properties': {'payer': {'type': 'string'},
                                                     'points': _POINTS}}}}}},
                      **failures(money_errors.InvalidUserId.code, money_errors.UserNotFound.code,
                                 errors.InvalidSpend.code, errors.NotEnoughPoints.code,
                                 *BODY_ERRORS, *KEY_ERRORS)}}})
    spec.path('/points/{uid}/balance', parameters=[_UID], operations={'get': {
        'summary': 'Spendable points per payer, every payer the member has had',
        'responses': {'200': {'description': 'Points by payer', 'content': {
            'application/json': {'schema': {'type': 'object',
                                            'additionalProperties': {'type': 'integer',
                                                                     'minimum': 0}}}}},
            **failures(money_errors.InvalidUserId.code, money_errors.UserNotFound.code)}}})
    _add_v3(spec)


_CLUB = {'name': 'club', 'in': 'path', 'required': True,
         'schema': {'type': 'string', 'pattern': '^%s$' % v3.CLUB_PATTERN},
         'description': 'The loyalty club, created on first use: 1 to 64 of a-z, 0-9, "_" '
                        'and "-", the first a letter or digit.'}
_MEMBER_ID = {'type': 'integer', 'minimum': 1, 'maximum': MAX_USER_ID}
_NO_NUL = '^[^\\u0000]*$'
_REPORTED = {'type': 'integer', 'minimum': -ledger.MAX_BALANCE, 'maximum': ledger.MAX_BALANCE,
             'nullable': True,
             'description': "An integration's own figure, stored with the event as reported "
                            'and never used for balances.'}


def _text(max_length, min_length=0, description=None):
    schema = {'type': 'string', 'minLength': min_length, 'maxLength': max_length,
              'pattern': _NO_NUL, 'nullable': True}
    if description:
        schema['description'] = description
    return schema


_ITEM = {
    'type': 'object', 'additionalProperties': False,
    'required': ['identifier_type', 'identifier', 'event_type', 'amount'],
    'properties': {
        'identifier_type': {'type': 'string', 'enum': list(v3.IDENTIFIER_TYPES)},
        'identifier': {'description': "The member's id, msisdn or email, as identifier_type "
                                      'says; one naming no member gets the status '
                                      '"Member does not exist".',
                       'anyOf': [{'type': 'string', 'minLength': 1, 'maxLength': 255,
                                  'pattern': _NO_NUL}, {'type': 'integer'}]},
        'event_type': {'type': 'string', 'enum': list(ledger.EVENT_TYPES),
                       'description': 'purchase, campaign and issue add points; use, revoke '
                                      'and expire take them; other does either.'},
        'amount': _POINTS,
        'event': _text(255),
        'message': _text(1024),
        'store_id': _text(255),
        'receipt_id': _text(255),
        'transaction_id': _text(255, 1, 'Applied once per club: a repeat gets the status '
                                        '"Duplicate transaction".'),
        'event_date': {'type': 'string', 'format': 'date-time', 'nullable': True,
                       'description': 'ISO 8601; without an offset read as UTC; default now.'},
        'wallet': {'type': 'string', 'pattern': '^%s$' % schemas.NAME_PATTERN, 'minLength': 1,
                   'maxLength': 64, 'nullable': True, 'default': 'default'},
        'expiry_points_date': {'type': 'string', 'format': 'date', 'nullable': True,
                               'description': 'Reported by the integration and stored as '
                                              'reported; the points granted never expire.'},
        'expiry_points_balance': _REPORTED,
        'wallet_new_balance': _REPORTED,
        'additional_properties': {'type': 'object', 'nullable': True,
                                  'description': 'Stored with the event: at most %d bytes as '
                                                 'JSON.' % v3.MAX_PROPERTIES_BYTES},
    }}
_INVALID_FORMAT = {
    'type': 'object', 'required': ['error', 'details'], 'additionalProperties': False,
    'properties': {'error': {'type': 'string', 'enum': ['Invalid format']},
                   'details': {'type': 'object', 'additionalProperties': {'type': 'string'},
                               'description': 'What is wrong, by field: "[1].amount", or '
                                              '"body" for the body as a whole.'}}}
_FEEDBACK = {'type': 'object', 'required': ['event_type', 'amount', 'status'],
             'additionalProperties': False,
             'properties': {'event_type': {'type': 'string', 'enum': list(ledger.EVENT_TYPES)},
                            'amount': _POINTS,
                            'status': {'type': 'string', 'enum': list(v3.STATUSES)}}}
_EVENT = {
    'type': 'object', 'additionalProperties': False,
    'required': ['id', 'member_id', 'date', 'type', 'wallet', 'amount', 'wallet_new_balance',
                 'store_id', 'receipt_id', 'event', 'message'],
    'properties': {
        'id': {'type': 'integer', 'description': 'Pass the last one seen as before_id to '
                                                 'read older events.'},
        'member_id': _MEMBER_ID,
        'date': {'type': 'string', 'format': 'date-time',
                 'description': 'The event date, UTC, to the second.'},
        'type': {'type': 'string', 'enum': list(events.TYPES)},
        'wallet': {'type': 'string'},
        'amount': _POINTS,
        'wallet_new_balance': {'type': 'integer', 'minimum': 0,
                               'description': "The wallet's balance after the event, as "
                                              'this service computed it.'},
        'store_id': {'type': 'string', 'nullable': True},
        'receipt_id': {'type': 'string', 'nullable': True},
        'event': {'type': 'string', 'nullable': True},
        'message': {'type': 'string', 'nullable': True}}}
_COUNT = {'type': 'integer', 'minimum': 1, 'maximum': 2 ** 63 - 1}
_EVENTS_PARAMS = [
    {'name': 'type', 'in': 'query', 'schema': {'type': 'string', 'enum': list(events.TYPES)}},
    *[{'name': name, 'in': 'query',
       'schema': {'type': 'string', 'maxLength': events.MAX_FILTER_LENGTH, 'pattern': _NO_NUL},
       'description': 'Events whose %s is exactly this.' % name}
      for name in events.TEXT_FILTERS],
    {'name': 'amount', 'in': 'query',
     'schema': {'type': 'integer', 'minimum': -schemas.MAX_POINTS,
                'maximum': schemas.MAX_POINTS},
     'description': 'Events of exactly this signed amount.'},
    {'name': 'date-start', 'in': 'query', 'schema': {'type': 'string', 'format': 'date'},
     'description': 'First UTC day of the event date, inclusive (YYYY-MM-DD).'},
    {'name': 'date-end', 'in': 'query', 'schema': {'type': 'string', 'format': 'date'},
     'description': 'Last UTC day of the event date, inclusive (YYYY-MM-DD).'},
    {'name': 'limit', 'in': 'query', 'schema': _COUNT},
    {'name': 'before_id', 'in': 'query', 'schema': _COUNT,
     'description': 'Only events with a smaller id: pass the last id seen to page on.'},
]
_WALLETS = {'description': 'Spendable points per wallet in the club ({} when none)',
            'content': {'application/json': {'schema': {
                'type': 'object', 'additionalProperties': {'type': 'integer', 'minimum': 0}}}}}
# Path parameters never hold "/" (an encoded one is not routed) or "%".
_LOOKUPS = {
    'by_member_id': ('member_id', _MEMBER_ID, (money_errors.InvalidUserId.code,)),
    'by_msisdn': ('msisdn', {'type': 'string', 'pattern': '^\\+?[0-9]{6,15}$'}, ()),
    'by_email': ('email', {'type': 'string', 'pattern': '^[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+$'},
                 ()),
}


def _add_v3(spec):
    spec.path(routes.V3, parameters=[_CLUB], operations={'post': {
        'summary': "Apply a batch of a club's points transactions, each answered with a status",
        # No maxItems: a longer array can be refused for its size (413) before it is read,
        # which the document cannot say; the limit is in the description.
        'description': 'Up to %d items (more: Invalid format), in one transaction; the body '
                       'is limited to MAX_BODY_BYTES. A malformed item makes the whole '
                       'request a 422 `{"error": "Invalid format", "details": ...}` and '
                       'nothing is written; otherwise each item gets a status, and only the '
                       'items with status "ok" are saved.' % v3.MAX_ITEMS,
        'parameters': [IDEMPOTENCY_KEY],
        'requestBody': {'required': True, 'content': {'application/json': {'schema': {
            'type': 'array', 'items': _ITEM}}}},
        'responses': {
            # The body is JSON only; anything unreadable is Invalid format, not 523.
            **failures(errors.InvalidClub.code, base_errors.BodyTooLarge.code,
                       base_errors.LengthRequired.code, base_errors.UnsupportedContentType.code,
                       *KEY_ERRORS),
            '200': {'description': 'One status per item, in order', 'content': {
                'application/json': {'schema': {'type': 'array', 'items': _FEEDBACK}}}},
            '422': {'description': 'A malformed batch (Invalid format); or 612 %s; or 519 %s'
                                   % (errors.InvalidClub.message,
                                      base_errors.InvalidIdempotencyKey.message),
                    'content': {'application/json': {'schema': {'oneOf': [
                        _INVALID_FORMAT, {'$ref': '#/components/schemas/ErrorResponse'}]}}}}}}})
    for segment, (name, schema, codes) in _LOOKUPS.items():
        spec.path('%s/%s/{%s}' % (routes.V3, segment, name), parameters=[
            _CLUB, {'name': name, 'in': 'path', 'required': True, 'schema': schema}],
            operations={'get': {
                'summary': "A member's spendable points per wallet in the club, by %s" % name,
                'responses': {'200': _WALLETS, **failures(
                    errors.InvalidClub.code, money_errors.UserNotFound.code, *codes)}}})
    spec.path(routes.V3 + '/events/{member_id}', parameters=[
        _CLUB, {'name': 'member_id', 'in': 'path', 'required': True, 'schema': _MEMBER_ID}],
        operations={'get': {
            'summary': "A member's points events in the club, newest first, streamed",
            'parameters': _EVENTS_PARAMS,
            'responses': {'200': {'description': 'Events, newest first', 'content': {
                'application/json': {'schema': {'type': 'array', 'items': _EVENT}}}},
                **failures(errors.InvalidClub.code, money_errors.InvalidUserId.code,
                           money_errors.UserNotFound.code, errors.UnknownEventsKey.code,
                           errors.InvalidEventsFilter.code, errors.InvalidEventsDate.code,
                           errors.InvalidEventsPaging.code)}}})
