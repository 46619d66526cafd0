"""The service against its own OpenAPI document, with schemathesis.

Requests generated from /openapi.json (valid ones and deliberately invalid
ones) go straight to the WSGI application, on SQLite and on PostgreSQL.
Every schemathesis check runs on every answer: no server error; status
code, content type, headers and body as documented; invalid input refused;
valid input accepted (but see _refused_for_a_rule_between_fields).
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from balance_api import create_app
from balance_api.config import Settings
from balance_api.storage.db import is_postgres, open_database
from gunicorn_server import bearer, create_key_in


@pytest.fixture
def api_schema(database_url, signing_key_file):
    db = open_database(database_url)
    app = create_app(Settings(database_url=database_url, signing_key_file=signing_key_file),
                     db=db)
    _admin_headers.clear()
    _admin_headers.update(bearer(create_key_in(db, 'schemathesis', ['admin'])))
    yield schemathesis.openapi.from_wsgi('/openapi.json', app)
    if is_postgres(db):
        db.close_all()


schema = schemathesis.pytest.from_fixture('api_schema')
# The admin key of the database under test (set by api_schema).
_admin_headers = {}


@schemathesis.auth(refresh_interval=None)
class AdminKey:
    """Generated requests carry the admin key; schemathesis's own checks
    also send them without it and with a wrong one, and expect 401."""

    def get(self, case, context):
        return _admin_headers['Authorization']

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), 'Authorization': data}


def _refused_for_a_rule_between_fields(case, response):
    """Whether a 422 answers one of the README's rules about two fields together.

    OpenAPI describes each field on its own, so a request can match the
    document and still break such a rule; the API is right to refuse it:
    513 when sender_id equals receiver_id, 516 (history) and 803 (exports)
    when date-start comes after date-end. Only for those answers, and only when the request really
    breaks the rule, is the "valid data is accepted" check skipped.
    """
    if response.status_code != 422:
        return False
    code = response.json().get('code')
    if code == 513:
        body = case.body if isinstance(case.body, dict) else {}
        return 'sender_id' in body and str(body['sender_id']) == str(body.get('receiver_id'))
    if code in (516, 803):
        filters = {name: str(value) for name, value in (case.query or {}).items()}
        start, end = filters.get('date-start'), filters.get('date-end')
        # YYYY-MM-DD strings sort like the days they name.
        return start is not None and end is not None and start > end
    return False


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_openapi_document(case):
    response = case.call()
    excluded = ([positive_data_acceptance]
                if _refused_for_a_rule_between_fields(case, response) else [])
    case.validate_response(response, excluded_checks=excluded)
