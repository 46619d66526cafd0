"""Metrics over HTTP: every request counted and timed, and the ``/metrics`` page."""
import time

import falcon

from . import metrics
from .commands import AnswersHead

# Any other method is counted as "other": the label's values stay a short list.
_METHODS = frozenset(falcon.COMBINED_METHODS)


class RequestMetrics:
    """Count every answer by route template, method and status, and time it
    by route template and method.

    The template (``/balance/{user_id}``), never the path: paths carry user
    ids, e-mail addresses and query strings, which would make a series of
    every one of them. Put first, so the time covers the other middleware;
    it ends when the answer is ready, before a streamed body is sent.
    """

    def process_request(self, req, resp):
        req.context.metrics_started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        seconds = time.perf_counter() - req.context.metrics_started
        metrics.request_answered(
            (req.uri_template or metrics.NO_ROUTE,
             req.method if req.method in _METHODS else 'other', resp.status_code), seconds)


class MetricsPage(AnswersHead):
    """GET /metrics: every worker's metrics, in Prometheus's text format.

    It needs ``permit`` (the application names it) unless ``public``
    (METRICS_PUBLIC=1): the counts tell how much money moves, and when.
    """

    uses_database = False

    def __init__(self, permit, public=False):
        self.permits = {'GET': permit}
        self.public = public

    def on_get(self, req, resp):
        resp.content_type, resp.data = metrics.exposition()
