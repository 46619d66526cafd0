"""GET /history and GET /history/{query}: the audit journal, streamed."""
import json

import falcon

from .. import history
from ..db import is_postgres
from ..money import format_amount
from ..streaming import json_array


def _render_row(row):
    entry_id, created_at, receiver_id, amount, operation, description, sender_id = row
    return json.dumps({
        'id': entry_id,
        'date': created_at.strftime('%Y-%m-%d %H:%M:%S'),
        'receiver_id': receiver_id,
        'sum': format_amount(amount),
        'operation': operation,
        'transaction_description': description,
        'sender_id': sender_id,
    })


class History:
    """Both the path form (/history/uid=12&date-start=...) and the query-string form."""

    # Validation needs no database; the stream opens its own connection.
    uses_database = False

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, query=None):
        filters = history.parse_query(query, req.query_string)
        resp.content_type = falcon.MEDIA_JSON
        ids_precede_commit = is_postgres(self.db)
        resp.stream = json_array(
            self.db, lambda: history.select(filters, ids_precede_commit), _render_row)
