"""The discount codes in the OpenAPI document (``balance_api.web.openapi``)."""
from .. import errors as base_errors
from ..auth import errors as auth_errors
from ..auth.keys import TOKEN_PATTERN
from ..web.openapi import (BODY_ERRORS, IDEMPOTENCY_KEY, KEY_ERRORS, answer, body, failures,
                           form_schema)
from . import codes, errors, routes, schemas, service

_ID = {'type': 'integer', 'minimum': 1, 'maximum': schemas.MAX_BRAND_ID}
_BRAND_ID = {'name': 'brand_id', 'in': 'path', 'required': True, 'schema': _ID,
             'description': 'The brand: a positive integer that fits a signed 64-bit integer.'}
_CODE = {'type': 'string', 'pattern': codes.PATTERN,
         'description': '8 characters: the digits 2-9 and the uppercase letters but I and O.'}
# What every route of the existing clients may answer, besides its own errors.
_LEGACY_REFUSALS = (auth_errors.MissingCredentials.code, auth_errors.MalformedCredentials.code,
                    auth_errors.UnknownKey.code, auth_errors.RevokedKey.code,
                    auth_errors.ExpiredKey.code, auth_errors.MissingPermit.code)


def _legacy_failures(*codes_answered):
    """``failures`` in the existing clients' envelope."""
    found = failures(*codes_answered, *_LEGACY_REFUSALS)
    for response in found.values():
        response['content'] = {'application/json': {'schema': {
            '$ref': '#/components/schemas/DiscountEnvelope'}}}
    return found


def add_to_spec(spec, plugin):
    """The discount codes' schemas and operations."""
    plugin.map_to_openapi_type(schemas.BrandId, 'integer', None)
    plugin.map_to_openapi_type(schemas.NumberOfCodes, 'integer', None)
    spec.components.schema('DiscountGenerateRequest', schema=schemas.GenerateRequest)
    form_schema(spec, 'DiscountGenerateRequest')
    spec.components.schema('DiscountEnvelope', component={
        'type': 'object', 'required': ['code', 'data', 'message', 'status'],
        'description': "The existing clients' envelope: `code` is the number as text "
                       '("201" on success, the error code otherwise).',
        'properties': {'code': {'type': 'string', 'pattern': '^[0-9]{3}$'},
                       'data': {'type': 'string'}, 'message': {'type': 'string'},
                       'status': {'type': 'string', 'enum': ['success', 'error']}}})
    spec.components.schema('DiscountCode', component={
        'type': 'object', 'required': ['brand_id', 'user_id', 'code'],
        'properties': {'brand_id': _ID, 'user_id': _ID, 'code': _CODE}})
    spec.components.schema('DiscountBrandStats', component={
        'type': 'object', 'required': ['brand_id', 'generated', 'claimed', 'remaining'],
        'properties': {'brand_id': _ID, 'generated': {'type': 'integer', 'minimum': 1},
                       'claimed': {'type': 'integer', 'minimum': 0},
                       'remaining': {'type': 'integer', 'minimum': 0}}})

    spec.path(routes.LEGACY_GENERATE, operations={'post': {
        'summary': 'Generate new codes for a brand (the brand exists from its first generation)',
        'description': 'The existing clients\' call: answers in their envelope, errors '
                       'included. 1 to %d codes a call, each new to the brand.'
                       % service.MAX_CODES,
        'parameters': [IDEMPOTENCY_KEY],
        'requestBody': body('DiscountGenerateRequest'),
        'responses': {'201': answer('DiscountEnvelope', 'Generated: `{"code": "201", "data": '
                                                        '"", "message": "System generated '
                                                        'discount codes successfully", '
                                                        '"status": "success"}`'),
                      **_legacy_failures(errors.InvalidBrandId.code,
                                         errors.InvalidNumberOfCodes.code,
                                         errors.CodesExhausted.code, *BODY_ERRORS,
                                         *KEY_ERRORS)}}})

    spec.path(routes.LEGACY_CLAIM, parameters=[
        {'name': 'user_id', 'in': 'path', 'required': True, 'schema': _ID,
         'description': 'The user the code is for.'},
        {'name': 'user_secret', 'in': 'path', 'required': True,
         'schema': {'type': 'string', 'pattern': '^%s$' % TOKEN_PATTERN.pattern},
         'description': "The token of an API key bound to that user (sent in the path, as "
                        'the existing clients send it; the logs write the route instead). '
                        'No header may carry a key as well.'},
        _BRAND_ID], operations={'get': {
            'summary': "The user's code of the brand, claimed on first asking",
            'deprecated': True,
            'description': "The existing clients' call: answers in their envelope, errors "
                           'included, the code in `data`. New clients use '
                           '`GET /discounts/{brand_id}/code`, which keeps the key out of the '
                           'URL.',
            'responses': {'200': answer('DiscountEnvelope', 'The code: `{"code": "201", '
                                                            '"data": "7U7E845L", "message": '
                                                            '"", "status": "success"}`'),
                          **_legacy_failures(errors.InvalidDiscountUserId.code,
                                             errors.InvalidBrandId.code,
                                             errors.SecretOfAnotherUser.code,
                                             errors.UnknownDiscountUser.code,
                                             errors.UnknownBrand.code, errors.OutOfCodes.code)}}})

    spec.path(routes.BRAND_CODE, parameters=[_BRAND_ID], operations={'get': {
        'summary': "The code of the key's user for the brand, claimed on first asking",
        'description': 'One code per user and brand: asking again answers the same code; no '
                       'code is ever given to two users. A key bound to a user claims for '
                       'it; a key bound to none names the user with `user_id`.',
        'parameters': [{'name': 'user_id', 'in': 'query', 'required': False, 'schema': _ID,
                        'description': 'The user (a key bound to a user may name only its '
                                       'own).'}],
        'responses': {'200': answer('DiscountCode', "The user's code"), **failures(
            errors.InvalidBrandId.code, errors.InvalidDiscountUserId.code,
            base_errors.UnknownField.code, errors.UserRequired.code,
            auth_errors.OtherUsersData.code, errors.UnknownDiscountUser.code,
            errors.UnknownBrand.code, errors.OutOfCodes.code)}}})

    spec.path(routes.BRAND_STATS, parameters=[_BRAND_ID], operations={'get': {
        'summary': 'Codes generated, claimed and remaining for a brand',
        'responses': {'200': answer('DiscountBrandStats', "The brand's figures"), **failures(
            errors.InvalidBrandId.code, errors.UnknownBrand.code)}}})
