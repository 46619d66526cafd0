"""The OpenAPI 3 document, generated from the marshmallow schemas with apispec."""
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from . import errors, schemas

_FORM = 'application/x-www-form-urlencoded'
_JSON = 'application/json'


def _error_table():
    rows = ['| code | HTTP | message |', '|---|---|---|']
    rows += ['| %d | %s | %s |' % (e.code, e.status[:3], e.message) for e in errors.all_errors()]
    return '\n'.join(rows)


def _body(schema):
    return {'required': True,
            'content': {_FORM: {'schema': schema}, _JSON: {'schema': schema}}}


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


_USER_ID = {'name': 'user_id', 'in': 'path', 'required': True,
            'schema': {'type': 'string', 'pattern': '^[1-9][0-9]{0,18}$'},
            'description': 'Positive integer that fits a signed 64-bit integer.'}
_IDEMPOTENCY_KEY = {'name': 'Idempotency-Key', 'in': 'header', 'required': False,
                    'schema': {'type': 'string', 'pattern': '^[\\x21-\\x7e]{1,255}$'},
                    'description': 'Retries with the same key and input get the first '
                                   'answer and change nothing (kept at least 24 hours).'}
_BODY_ERRORS = (errors.BodyTooLarge.code, errors.LengthRequired.code,
                errors.UnsupportedContentType.code, errors.MalformedBody.code,
                errors.UnknownField.code)
_KEY_ERRORS = (errors.IdempotencyKeyReused.code, errors.InvalidIdempotencyKey.code)
_HISTORY_PARAMS = [
    {'name': 'uid', 'in': 'query', 'schema': {'type': 'string', 'pattern': '^[1-9][0-9]{0,18}$'},
     'description': 'Rows where this user is sender or receiver.'},
    {'name': 'date-start', 'in': 'query', 'schema': {'type': 'string', 'format': 'date'},
     'description': 'First UTC day, inclusive (YYYY-MM-DD).'},
    {'name': 'date-end', 'in': 'query', 'schema': {'type': 'string', 'format': 'date'},
     'description': 'Last UTC day, inclusive (YYYY-MM-DD).'},
    {'name': 'limit', 'in': 'query', 'schema': {'type': 'integer', 'minimum': 1}},
    {'name': 'after_id', 'in': 'query', 'schema': {'type': 'integer', 'minimum': 0},
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
    history_get = {
        'summary': 'Audit journal rows ordered by id, streamed',
        'parameters': _HISTORY_PARAMS,
        'responses': {'200': _json('HistoryRow', 'Journal rows', array=True),
                      **_errors(*_HISTORY_ERRORS)}}
    spec.path('/history', operations={'get': history_get})
    spec.path('/history/{query}', parameters=[{
        'name': 'query', 'in': 'path', 'required': True, 'schema': {'type': 'string'},
        'description': 'The same filters in the path, as existing clients send them: '
                       'uid=12&date-start=2016-03-20&date-end=2016-03-22'}],
        operations={'get': {**history_get, 'parameters': []}})
    spec.path('/health', operations={'get': {
        'summary': 'The process is up',
        'responses': {'200': {'description': 'Up'}}}})
    spec.path('/ready', operations={'get': {
        'summary': 'The database answers',
        'responses': {'200': {'description': 'Ready'}, **_errors()}}})
    return spec
