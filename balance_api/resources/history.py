"""GET /history and GET /history/{query}: the audit journal, streamed."""
from .. import history
from ..raw_path import path_field_as_sent
from ..streaming import respond
from .common import AnswersHead


class History(AnswersHead):
    """Both the path form (/history/uid=12&date-start=...) and the query-string form,
    with the same meaning: each is decoded once, by ``history.parse_query``."""

    # Validation needs no database; the stream opens its own connection.
    uses_database = False

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, query=None):
        if query is not None:
            query = path_field_as_sent(req, 'query', query)
        filters = history.parse_query(query, req.query_string)
        respond(resp, self.db, history.statement(filters, self.db))
