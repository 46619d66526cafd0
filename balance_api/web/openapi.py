"""The OpenAPI 3 document, generated from the marshmallow schemas with apispec."""
import copy

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .. import errors
from ..money import schemas

_FORM = 'application/x-www-form-urlencoded'
_JSON = 'application/json'


def _error_table():
    rows = ['| code | HTTP | message |', '|---|---|---|']
    rows += ['| %d | %s | %s |' % (e.code, e.status[:3], e.message) for e in errors.all_errors()]
    return '\n'.join(rows)


def _body(schema):
    return {'required': True,
            'content': {_FORM: {'schema': schema + 'Form'}, _JSON: {'schema': schema}}}


def _empty_allowed(field):
    """An empty email or msisdn means none given (what a form sends for an empty input)."""
    rule = {key: field.pop(key) for key in ('format', 'pattern') if key in field}
    field['anyOf'] = [rule, {'maxLength': 0}]


def _form_schema(spec, name):
    """``name`` as a form body, registered as ``nameForm``: a form field is text or
    absent, never null (sent as text, "null" would be that text)."""
    schema = copy.deepcopy(spec.components.schemas[name])
    for field in schema['properties'].values():
        if field.pop('nullable', False) and field.get('default', '') is None:
            del field['default']
    spec.components.schema(name + 'Form', component=schema)


def _json(schema, description, array=False):
    schema_ref = {'type': 'array', 'items': schema} if array else schema
    return {'description': description, 'content': {_JSON: {'schema': schema_ref}}}


def _errors(*codes):
    """Responses for the error codes an operation may answer with, grouped by status."""
    by_status = {}
    for error in errors.all_errors():
        if error.code in codes or error.code in (errors.InternalError.code,
                                                 errors.DatabaseUnavailable.code):
            by_status.setdefault(error.status[:3], []).append(error)
    return {
        status: _json('ErrorResponse', '; '.join('%d %s' % (e.code, e.message) for e in found))
        for status, found in sorted(by_status.items())
    }


_USER_ID_SCHEMA = {'type': 'integer', 'minimum': 1, 'maximum': schemas.MAX_USER_ID}
_COUNT_MAX = 2 ** 63 - 1
_USER_ID = {'name': 'user_id', 'in': 'path', 'required': True, 'schema': _USER_ID_SCHEMA,
            'description': 'Positive integer that fits a signed 64-bit integer.'}
_IDEMPOTENCY_KEY = {'name': 'Idempotency-Key', 'in': 'header', 'required': False,
                    'schema': {'type': 'string',
                               'pattern': '^[\\x21-\\x2b\\x2d-\\x7e]{1,255}$'},
                    'description': 'Retries with the same key and input get the first '
                                   'answer and change nothing (kept at least 24 hours). '
                                   'Visible ASCII without a comma: servers join a repeated '
                                   'header with commas.'}
_BODY_ERRORS = (errors.BodyTooLarge.code, errors.LengthRequired.code,
                errors.UnsupportedContentType.code, errors.MalformedBody.code,
                errors.UnknownField.code)
_KEY_ERRORS = (errors.IdempotencyKeyReused.code, errors.InvalidIdempotencyKey.code)
_HISTORY_PARAMS = [
    {'name': 'uid', 'in': 'query', 'schema': _USER_ID_SCHEMA,
     'description': 'Rows where this user is sender or receiver.'},
    {'name': 'date-start', 'in': 'query', 'schema': {'type': 'string', 'format': 'date'},
     'description': 'First UTC day, inclusive (YYYY-MM-DD).'},
    {'name': 'date-end', 'in': 'query', 'schema': {'type': 'string', 'format': 'date'},
     'description': 'Last UTC day, inclusive (YYYY-MM-DD).'},
    {'name': 'limit', 'in': 'query',
     'schema': {'type': 'integer', 'minimum': 1, 'maximum': _COUNT_MAX}},
    {'name': 'after_id', 'in': 'query',
     'schema': {'type': 'integer', 'minimum': 0, 'maximum': _COUNT_MAX},
     'description': 'Only rows with a larger id: pass the last id seen to page on.'},
]


_HISTORY_ERRORS = (errors.InvalidUserId.code, errors.InvalidHistoryDate.code,
                   errors.UnknownHistoryKey.code, errors.InvalidHistoryRange.code,
                   errors.InvalidPaging.code)


def build_spec():
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title='balance_api', version='1.0.0', openapi_version='3.0.3', plugins=[plugin],
        info={'description': 'Balances, transfers and a tamper-evident audit journal. '
                             'Amounts are decimal strings with two places. Every error is '
                             '`{"code", "message"}`:\n\n' + _error_table()})
    plugin.map_to_openapi_type(schemas.Amount, 'string', None)
    for schema in (schemas.CreateUserRequest, schemas.BalanceChangeRequest,
                   schemas.TransferRequest, schemas.BalanceResponse, schemas.MessageResponse,
                   schemas.ErrorResponse, schemas.HistoryRow):
        spec.components.schema(schema.__name__, schema=schema)
    for name in ('email', 'msisdn'):
        _empty_allowed(spec.components.schemas['CreateUserRequest']['properties'][name])
    for name in ('CreateUserRequest', 'BalanceChangeRequest', 'TransferRequest'):
        _form_schema(spec, name)

    spec.path('/balance', operations={'get': {
        'summary': "Every user's balance, ordered by user id",
        'responses': {'200': _json('BalanceResponse', 'Balances', array=True), **_errors()}}})
    spec.path('/balance/{user_id}', parameters=[_USER_ID], operations={
        'get': {'summary': "One user's balance",
                'responses': {'200': _json('BalanceResponse', 'The balance'),
                              **_errors(errors.InvalidUserId.code, errors.UserNotFound.code)}},
        'put': {'summary': 'Add money to a user or take money from one',
                'parameters': [_IDEMPOTENCY_KEY],
                'requestBody': _body('BalanceChangeRequest'),
                'responses': {'200': _json('BalanceResponse', 'The new balance'), **_errors(
                    errors.BalanceChangeFailed.code, errors.OperationMismatch.code,
                    errors.InsufficientFunds.code, errors.InvalidUserId.code,
                    errors.InvalidAmount.code, errors.UserNotFound.code,
                    errors.JournalWriteFailed.code, errors.BalanceOverflow.code,
                    errors.InvalidDescription.code, *_BODY_ERRORS, *_KEY_ERRORS)}}})
    spec.path('/user', operations={'post': {
        'summary': 'Create a user with a zero balance',
        'parameters': [_IDEMPOTENCY_KEY],
        'requestBody': _body('CreateUserRequest'),
        'responses': {
            '201': _json('BalanceResponse', 'Created'),
            '200': _json('BalanceResponse', 'The user existed already; nothing was written'),
            **_errors(errors.UserCreateFailed.code, errors.InvalidUserId.code,
                      errors.JournalWriteFailed.code, errors.InvalidContact.code,
                      errors.ContactTaken.code, *_BODY_ERRORS, *_KEY_ERRORS)}}})
    spec.path('/balance_delete_user/{user_id}', parameters=[_USER_ID], operations={'delete': {
        'summary': 'Delete a user whose balance is zero (its history stays)',
        'parameters': [_IDEMPOTENCY_KEY],
        'responses': {'200': _json('MessageResponse', 'Deleted'), **_errors(
            errors.UserDeleteFailed.code, errors.InvalidUserId.code, errors.UserNotFound.code,
            errors.NonZeroBalance.code, errors.JournalWriteFailed.code, *_KEY_ERRORS)}}})
    spec.path('/transfer', operations={'put': {
        'summary': 'Move money from one user to another',
        'parameters': [_IDEMPOTENCY_KEY],
        'requestBody': _body('TransferRequest'),
        'responses': {'200': _json('BalanceResponse', 'Both balances, ordered by user id',
                                   array=True), **_errors(
            errors.BalanceChangeFailed.code, errors.InsufficientFunds.code,
            errors.InvalidUserId.code, errors.InvalidAmount.code, errors.UserNotFound.code,
            errors.JournalWriteFailed.code, errors.SameSenderReceiver.code,
            errors.BalanceOverflow.code, errors.InvalidDescription.code,
            *_BODY_ERRORS, *_KEY_ERRORS)}}})
    # The path form existing clients use, /history/uid=12&date-start=..., is
    # a query string in the path, decoded once: its "=" and "&" must be sent
    # as they are. OpenAPI cannot say so (a path parameter's are always
    # percent-encoded, and %3D is part of a key), so it is described here
    # rather than as an operation that generated clients would get wrong.
    spec.path('/history', operations={'get': {
        'summary': 'Audit journal rows ordered by id, streamed',
        'description': 'Existing clients may send the same filters as the path instead, '
                       'unencoded, with the same meaning: '
                       '/history/uid=12&date-start=2016-03-20&date-end=2016-03-22',
        'parameters': _HISTORY_PARAMS,
        'responses': {'200': _json('HistoryRow', 'Journal rows', array=True),
                      **_errors(*_HISTORY_ERRORS)}}})
    spec.path('/health', operations={'get': {
        'summary': 'The process is up',
        'responses': {'200': {'description': 'Up'}}}})
    spec.path('/ready', operations={'get': {
        'summary': 'The database answers',
        'responses': {'200': {'description': 'Ready'}, **_errors()}}})
    return spec
