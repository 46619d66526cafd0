"""The money API in the OpenAPI document (``balance_api.web.openapi``)."""
from ..web.openapi import (BODY_ERRORS, IDEMPOTENCY_KEY, KEY_ERRORS, answer, body, failures,
                           form_schema)
from . import errors, schemas


def _empty_allowed(field):
    """An empty email or msisdn means none given (what a form sends for an empty input)."""
    rule = {key: field.pop(key) for key in ('format', 'pattern') if key in field}
    field['anyOf'] = [rule, {'maxLength': 0}]


_USER_ID_SCHEMA = {'type': 'integer', 'minimum': 1, 'maximum': schemas.MAX_USER_ID}
_COUNT_MAX = 2 ** 63 - 1
_USER_ID = {'name': 'user_id', 'in': 'path', 'required': True, 'schema': _USER_ID_SCHEMA,
            'description': 'Positive integer that fits a signed 64-bit integer.'}
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


def add_to_spec(spec, plugin):
    """The money API's schemas and operations."""
    plugin.map_to_openapi_type(schemas.Amount, 'string', None)
    for schema in (schemas.CreateUserRequest, schemas.BalanceChangeRequest,
                   schemas.TransferRequest, schemas.BalanceResponse, schemas.MessageResponse,
                   schemas.HistoryRow, schemas.UpdateContactRequest, schemas.ContactResponse):
        spec.components.schema(schema.__name__, schema=schema)
    for request in ('CreateUserRequest', 'UpdateContactRequest'):
        for name in ('email', 'msisdn'):
            _empty_allowed(spec.components.schemas[request]['properties'][name])
    for name in ('CreateUserRequest', 'BalanceChangeRequest', 'TransferRequest',
                 'UpdateContactRequest'):
        form_schema(spec, name)

    spec.path('/balance', operations={'get': {
        'summary': "Every user's balance, ordered by user id",
        'responses': {'200': answer('BalanceResponse', 'Balances', array=True), **failures()}}})
    spec.path('/balance/{user_id}', parameters=[_USER_ID], operations={
        'get': {'summary': "One user's balance",
                'responses': {'200': answer('BalanceResponse', 'The balance'),
                              **failures(errors.InvalidUserId.code, errors.UserNotFound.code)}},
        'put': {'summary': 'Add money to a user or take money from one',
                'parameters': [IDEMPOTENCY_KEY],
                'requestBody': body('BalanceChangeRequest'),
                'responses': {'200': answer('BalanceResponse', 'The new balance'), **failures(
                    errors.BalanceChangeFailed.code, errors.OperationMismatch.code,
                    errors.InsufficientFunds.code, errors.InvalidUserId.code,
                    errors.InvalidAmount.code, errors.UserNotFound.code,
                    errors.JournalWriteFailed.code, errors.BalanceOverflow.code,
                    errors.InvalidDescription.code, *BODY_ERRORS, *KEY_ERRORS)}}})
    spec.path('/user', operations={'post': {
        'summary': 'Create a user with a zero balance',
        'parameters': [IDEMPOTENCY_KEY],
        'requestBody': body('CreateUserRequest'),
        'responses': {
            '201': answer('BalanceResponse', "Created, or with restore=true a deleted user's "
                                             'account re-opened'),
            '200': answer('BalanceResponse', 'The user existed already with the email and '
                                             'msisdn given (those left out are not compared); '
                                             'nothing was written'),
            **failures(errors.UserCreateFailed.code, errors.InvalidUserId.code,
                      errors.UserNotFound.code, errors.JournalWriteFailed.code,
                      errors.InvalidContact.code, errors.ContactTaken.code,
                      errors.UserDetailsDiffer.code, errors.UserWasDeleted.code,
                      errors.InvalidRestore.code, *BODY_ERRORS, *KEY_ERRORS)}}})
    spec.path('/user/{user_id}', parameters=[_USER_ID], operations={'put': {
        'summary': "Change a user's email or msisdn (a field left out stays; empty clears it)",
        'parameters': [IDEMPOTENCY_KEY],
        'requestBody': body('UpdateContactRequest'),
        'responses': {'200': answer('ContactResponse', "The user's contact details"),
                      **failures(errors.InvalidUserId.code, errors.UserNotFound.code,
                                 errors.InvalidContact.code, errors.ContactTaken.code,
                                 *BODY_ERRORS, *KEY_ERRORS)}}})
    spec.path('/balance_delete_user/{user_id}', parameters=[_USER_ID], operations={'delete': {
        'summary': 'Delete a user whose balance is zero (its history stays)',
        'parameters': [IDEMPOTENCY_KEY],
        'responses': {'200': answer('MessageResponse', 'Deleted'), **failures(
            errors.UserDeleteFailed.code, errors.InvalidUserId.code, errors.UserNotFound.code,
            errors.NonZeroBalance.code, errors.JournalWriteFailed.code, *KEY_ERRORS)}}})
    spec.path('/transfer', operations={'put': {
        'summary': 'Move money from one user to another',
        'parameters': [IDEMPOTENCY_KEY],
        'requestBody': body('TransferRequest'),
        'responses': {'200': answer('BalanceResponse', 'Both balances, ordered by user id',
                                   array=True), **failures(
            errors.BalanceChangeFailed.code, errors.InsufficientFunds.code,
            errors.InvalidUserId.code, errors.InvalidAmount.code, errors.UserNotFound.code,
            errors.JournalWriteFailed.code, errors.SameSenderReceiver.code,
            errors.BalanceOverflow.code, errors.InvalidDescription.code,
            *BODY_ERRORS, *KEY_ERRORS)}}})
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
        'responses': {'200': answer('HistoryRow', 'Journal rows', array=True),
                      **failures(*_HISTORY_ERRORS)}}})
