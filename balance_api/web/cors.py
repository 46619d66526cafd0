"""Cross-origin requests from browsers: refused unless CORS_ORIGINS lists the page's origin.

Falcon's ``CORSMiddleware`` answers for the listed origins alone: an
answer to any other carries no CORS header, so the browser keeps it from
the page. A preflight (``OPTIONS`` with ``Access-Control-Request-Method``)
needs no key: Falcon's own OPTIONS answer states only the route's methods
(``balance_api.auth.middleware``). Keys travel in a header, never in
cookies, so credentials are not allowed.
"""
import falcon

from .middleware import REQUEST_ID_HEADER

# What a page may read of an answer besides the safelisted headers.
EXPOSED_HEADERS = (REQUEST_ID_HEADER, 'Idempotent-Replayed', 'WWW-Authenticate')


class ListedOrigins(falcon.CORSMiddleware):
    """Falcon's CORS policy for a list of origins, whose answers say they vary by Origin.

    An answer names the one origin it allows, so a cache in between must not
    give it to a page of another origin (or keep the one without the header
    from a listed one).
    """

    def process_response(self, req, resp, resource, req_succeeded):
        super().process_response(req, resp, resource, req_succeeded)
        resp.append_header('Vary', 'Origin')


def middleware(origins):
    """The middleware that opens the API to ``origins``: none when there are none."""
    if not origins:
        return []
    return [ListedOrigins(allow_origins=list(origins), expose_headers=EXPOSED_HEADERS)]
