"""The OpenAPI 3 document, assembled with apispec from what each domain adds.

The helpers here describe what every domain's operations share: bodies in
both media types, JSON answers, the numbered errors, the Idempotency-Key.
"""
import copy

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .. import __version__, errors
from .validation import ErrorResponse

_FORM = 'application/x-www-form-urlencoded'
_JSON = 'application/json'


def _error_table():
    rows = ['| code | HTTP | message |', '|---|---|---|']
    rows += ['| %d | %s | %s |' % (e.code, e.status[:3], e.message) for e in errors.all_errors()]
    return '\n'.join(rows)


def body(schema):
    return {'required': True,
            'content': {_FORM: {'schema': schema + 'Form'}, _JSON: {'schema': schema}}}


def form_schema(spec, name):
    """``name`` as a form body, registered as ``nameForm``: a form field is text or
    absent, never null (sent as text, "null" would be that text)."""
    schema = copy.deepcopy(spec.components.schemas[name])
    for field in schema['properties'].values():
        if field.pop('nullable', False) and field.get('default', '') is None:
            del field['default']
    spec.components.schema(name + 'Form', component=schema)


def answer(schema, description, array=False):
    schema_ref = {'type': 'array', 'items': schema} if array else schema
    return {'description': description, 'content': {_JSON: {'schema': schema_ref}}}


def failures(*codes):
    """Responses for the error codes an operation may answer with, grouped by status."""
    by_status = {}
    for error in errors.all_errors():
        if error.code in codes or error.code in (errors.InternalError.code,
                                                 errors.DatabaseUnavailable.code):
            by_status.setdefault(error.status[:3], []).append(error)
    return {
        status: answer('ErrorResponse', '; '.join('%d %s' % (e.code, e.message) for e in found))
        for status, found in sorted(by_status.items())
    }


IDEMPOTENCY_KEY = {'name': 'Idempotency-Key', 'in': 'header', 'required': False,
                    'schema': {'type': 'string',
                               'pattern': '^[\\x21-\\x2b\\x2d-\\x7e]{1,255}$'},
                    'description': 'Retries with the same key and input get the first '
                                   'answer and change nothing (kept at least 24 hours). '
                                   'Visible ASCII without a comma: servers join a repeated '
                                   'header with commas.'}
BODY_ERRORS = (errors.BodyTooLarge.code, errors.LengthRequired.code,
                errors.UnsupportedContentType.code, errors.MalformedBody.code,
                errors.UnknownField.code)
KEY_ERRORS = (errors.IdempotencyKeyReused.code, errors.InvalidIdempotencyKey.code)


def build_spec(domains, plugins=()):
    """The whole document: ``domains`` are functions ``(spec, plugin)`` that
    add their schemas and operations; ``plugins`` are more apispec plugins
    (the keys' permits on every operation)."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title='balance_api', version=__version__, openapi_version='3.0.3',
        plugins=[plugin, *plugins],
        info={'description': 'Balances, transfers and a tamper-evident audit journal. '
                             'Amounts are decimal strings with two places. Every error is '
                             '`{"code", "message"}`:\n\n' + _error_table()})
    spec.components.schema('ErrorResponse', schema=ErrorResponse)
    for add_to in domains:
        add_to(spec, plugin)
    spec.path('/health', operations={'get': {
        'summary': 'The process is up; its version',
        'responses': {'200': {'description': 'Up: `{"status": "ok", "version": "%s"}`'
                                             % __version__}}}})
    spec.path('/ready', operations={'get': {
        'summary': 'The database answers and its schema is the one this version expects',
        'description': 'A 541 names the migrations in its message and lists them: '
                       '`pending` (not applied yet: run `python -m balance_api migrate`) '
                       'and `unknown` (applied by a newer version).',
        'responses': {'200': {'description': 'Ready'},
                      **failures(errors.SchemaNotMigrated.code)}}})
    spec.path('/metrics', operations={'get': {
        'summary': "Every worker's request counts and times, in Prometheus's text format",
        'description': 'Counted by route template, method and status, never by path. Open '
                       'to anyone when the service runs with `METRICS_PUBLIC=1`.',
        'responses': {'200': {'description': 'The metrics (text exposition format 0.0.4)',
                              'content': {'text/plain': {'schema': {'type': 'string'}}}}}}})
    return spec
