"""Health, readiness and the API's own description."""
import json

import falcon

from .. import errors
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
        resp.media = {'status': 'ok'}


class Ready(AnswersHead):
    """GET /ready: the database answers."""

    # Open without a key.
    public = True

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp):
        try:
            self.db.execute_sql('SELECT 1')
        except Exception as exc:
            raise errors.DatabaseUnavailable(str(exc)) from exc
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
