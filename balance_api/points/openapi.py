"""The points APIs in the OpenAPI document (``balance_api.web.openapi``)."""
from ..money import errors as money_errors
from ..money.schemas import MAX_USER_ID
from ..web.openapi import BODY_ERRORS, IDEMPOTENCY_KEY, KEY_ERRORS, body, failures, form_schema
from . import errors, schemas

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
