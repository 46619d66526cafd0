"""Health, readiness and the API's own description."""
import json
import time

import falcon

from .. import __version__, errors
from ..storage.db import schema_status, shipped_migrations
from .commands import AnswersHead

DOCS_PAGE = '''<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>balance_api</title>
  <link rel="stylesheet" href="/api/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});
  </script>
</body>
</html>
'''


class Health(AnswersHead):
    """GET /health: the process is up (no database involved)."""

    # Open without a key.
    public = True
    uses_database = False

    def on_get(self, req, resp):
        resp.media = {'status': 'ok', 'version': __version__}


class Ready(AnswersHead):
    """GET /ready: the database answers and its schema is the one the code
    expects (every shipped migration applied, no unknown one).

    A worker remembers a good schema for ``SCHEMA_RECHECK_SECONDS`` and
    meanwhile only asks the database to answer; a bad one is looked at
    again on every request, so the worker is ready as soon as ``migrate``
    has run.
    """

    # Open without a key.
    public = True
    # Long enough to make the check rare, short enough that a rollback made
    # under a running service shows within a minute.
    SCHEMA_RECHECK_SECONDS = 60.0

    def __init__(self, db, clock=time.monotonic):
        self.db = db
        self.clock = clock
        self._shipped = None
        self._schema_good_until = None

    def on_get(self, req, resp):
        recheck = self._schema_good_until is None or self.clock() >= self._schema_good_until
        try:
            if recheck:
                if self._shipped is None:
                    self._shipped = shipped_migrations()
                status = schema_status(self.db, self._shipped)
            else:
                self.db.execute_sql('SELECT 1')
        except Exception as exc:
            raise errors.DatabaseUnavailable(str(exc)) from exc
        if recheck:
            if not status.current:
                self._schema_good_until = None
                raise errors.SchemaNotMigrated(status.pending, status.unknown)
            self._schema_good_until = self.clock() + self.SCHEMA_RECHECK_SECONDS
        resp.media = {'status': 'ready'}


class OpenApiDocument(AnswersHead):
    """GET /openapi.json, generated once from the schemas."""

    # Open without a key.
    public = True
    uses_database = False

    def __init__(self, spec):
        self.body = json.dumps(spec.to_dict()).encode('utf-8')

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body


class DocsPage(AnswersHead):
    """GET /api/docs: a readable page over /openapi.json, with assets served locally."""

    # Open without a key.
    public = True
    uses_database = False

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = DOCS_PAGE
