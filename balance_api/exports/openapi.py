"""The exports in the OpenAPI document (``balance_api.web.openapi``)."""
from ..money.schemas import MAX_USER_ID
from ..points.ledger import EVENT_TYPES
from ..web.openapi import answer, failures
from . import errors
from .query import FORMATS, OPERATIONS

_DAYS = [
    {'name': 'date-start', 'in': 'query', 'required': True,
     'schema': {'type': 'string', 'format': 'date'},
     'description': 'First UTC day, inclusive (YYYY-MM-DD).'},
    {'name': 'date-end', 'in': 'query', 'required': True,
     'schema': {'type': 'string', 'format': 'date'},
     'description': 'Last UTC day, inclusive (YYYY-MM-DD), not before date-start.'},
]
_UID = {'name': 'uid', 'in': 'query', 'schema': {'type': 'integer', 'minimum': 1,
                                                 'maximum': MAX_USER_ID},
        'description': "Only this user's rows (a key bound to a user: its own, the default)."}
_FORMAT = {'name': 'format', 'in': 'query',
           'schema': {'type': 'string', 'enum': list(FORMATS), 'default': 'csv'}}


def _kinds(name, values, what):
    return {'name': name, 'in': 'query', 'style': 'form', 'explode': True,
            'schema': {'type': 'array', 'items': {'type': 'string', 'enum': list(values)}},
            'description': 'Only rows of these %s (repeat the key); default: all.' % what}


_QUERY_ERRORS = (errors.UnknownExportKey.code, errors.InvalidExportDate.code,
                 errors.InvalidExportRange.code, errors.InvalidExportUid.code,
                 errors.InvalidExportFormat.code)
_FILE = {'description': 'The export: CSV (header row, CRLF) or JSON Lines, whose last line '
                        'is {"manifest": {...}}; Content-Disposition names the file',
         'content': {'text/csv': {'schema': {'type': 'string'}},
                     'application/jsonl': {'schema': {'type': 'string'}}}}
_MANIFEST = {'type': 'object', 'properties': {
    'export': {'type': 'string', 'enum': ['journal', 'points', 'discounts']},
    'parameters': {'type': 'object'}, 'rows': {'type': 'integer'},
    'first_id': {'type': 'integer', 'nullable': True},
    'last_id': {'type': 'integer', 'nullable': True}, 'sums': {'type': 'object'},
    'sha256': {'type': 'string'}, 'snapshot_at': {'type': 'string'},
    'settled_id': {'type': 'integer', 'nullable': True},
    'signature': {'type': 'object', 'properties': {
        'algorithm': {'type': 'string'}, 'public_key': {'type': 'string'},
        'value': {'type': 'string'}}}},
    'required': ['export', 'parameters', 'rows', 'sums', 'sha256', 'snapshot_at', 'signature']}


def add_to_spec(spec, plugin):
    """The exports' schemas and operations."""
    spec.components.schema('ExportManifest', component=_MANIFEST)
    spec.components.schema('PublicKey', component={
        'type': 'object', 'required': ['algorithm', 'public_key'], 'properties': {
            'algorithm': {'type': 'string', 'enum': ['Ed25519']},
            'public_key': {'type': 'string', 'description': 'base64 of the 32 raw bytes'}}})
    spec.components.schema('Reconciliation', component={
        'type': 'object', 'required': ['ok', 'accounts', 'breaks'], 'properties': {
            'ok': {'type': 'boolean'}, 'accounts': {'type': 'integer'},
            'breaks': {'type': 'array', 'items': {'type': 'object'}},
            'unlisted_breaks': {'type': 'integer'}}})
    for path, kinds, kind_error in (
            ('/export', _kinds('operation', OPERATIONS, 'operations'),
             errors.InvalidExportOperation.code),
            ('/export/points', _kinds('event_type', EVENT_TYPES, 'event types'),
             errors.InvalidExportEventType.code)):
        parameters = [*_DAYS, _UID, kinds, _FORMAT]
        what = 'journal entries' if path == '/export' else 'points entries'
        spec.path(path, operations={'get': {
            'summary': 'The %s of a range of UTC days, streamed' % what,
            'parameters': parameters,
            'responses': {'200': _FILE, **failures(
                *_QUERY_ERRORS, kind_error, errors.SigningKeyNotConfigured.code)}}})
        spec.path(path + '/manifest', operations={'get': {
            'summary': 'The signed manifest of the export the same parameters give',
            'parameters': parameters,
            'responses': {'200': answer('ExportManifest', 'The manifest'), **failures(
                *_QUERY_ERRORS, kind_error, errors.SigningKeyNotConfigured.code)}}})
    discounts = [*_DAYS, dict(_UID, description="Only this user's claims."), _FORMAT]
    spec.path('/export/discounts', operations={'get': {
        'summary': "The discount codes' audit rows (generations and claims) of a range of UTC "
                   'days, streamed',
        'parameters': discounts,
        'responses': {'200': _FILE, **failures(*_QUERY_ERRORS,
                                               errors.SigningKeyNotConfigured.code)}}})
    spec.path('/export/discounts/manifest', operations={'get': {
        'summary': 'The signed manifest of the discounts export the same parameters give',
        'parameters': discounts,
        'responses': {'200': answer('ExportManifest', 'The manifest'), **failures(
            *_QUERY_ERRORS, errors.SigningKeyNotConfigured.code)}}})
    spec.path('/export/public-key', operations={'get': {
        'summary': 'The public key that checks export manifests',
        'responses': {'200': answer('PublicKey', 'The public key'),
                      **failures(errors.PublicKeyNotConfigured.code)}}})
    spec.path('/reconciliation', operations={'get': {
        'summary': 'Opening balance + postings = closing balance for every account, and '
                   "deposits - withdrawals = the change in the users' total",
        'parameters': _DAYS,
        'responses': {'200': answer('Reconciliation', 'The result, with every break'),
                      **failures(errors.UnknownExportKey.code, errors.InvalidExportDate.code,
                                 errors.InvalidExportRange.code)}}})
