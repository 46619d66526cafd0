"""GET /history and GET /history/{query}: the audit journal, streamed."""
from .. import history
from ..streaming import respond


class History:
    """Both the path form (/history/uid=12&date-start=...) and the query-string form."""

    # Validation needs no database; the stream opens its own connection.
    uses_database = False

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, query=None):
        filters = history.parse_query(query, req.query_string)
        respond(resp, self.db, history.statement(filters, self.db))
