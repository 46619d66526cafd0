"""Paths that carry a secret, and what the logs write instead of them.

Some existing clients send an API key's token as a path segment (a
resource says so with ``token_parameter``, see
``balance_api.auth.middleware``). Such a path must never reach a log line:
the access log, the refusal log and gunicorn's own error lines write the
route's template instead (``/discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}``),
and the nginx configuration (``balance_api.web.proxy``) does the same.

A path is taken for such a route's when it holds the route's fixed
beginning (everything before its first parameter) anywhere, matched
loosely: in any case, with any character percent-encoded, with repeated
slashes. That covers every spelling the router could send to the route and
many it would not (a wrong method, a missing segment, a typo in the case),
so the secret of a request that was refused, or never routed, stays out of
the logs too. Writing a template for a path that held no secret loses a
little detail; writing a secret would lose the key.
"""
import re

# template -> the pattern of its fixed beginning, for every route that carries a secret.
_ROUTES = {}
_PATTERN = None


def _loose(character):
    # Matched case-insensitively: hex digits of an escape may be in either case too.
    if character == '/':
        return '(?:/|%2f)+'
    return '(?:%s|%%%02x)' % (re.escape(character), ord(character))


def pattern_source(template):
    """The regular expression, to match case-insensitively, that a path of
    ``template`` holds: plain groups only, the same in Python and in nginx's PCRE."""
    return ''.join(_loose(character) for character in template.split('{', 1)[0])


def register(template):
    """Keep paths of ``template`` (a route template with a secret in it) out of the logs."""
    global _PATTERN
    if template not in _ROUTES:
        _ROUTES[template] = pattern_source(template)
        _PATTERN = re.compile('|'.join('(%s)' % found for found in _ROUTES.values()),
                              re.IGNORECASE)


def _template(found):
    # One capturing group per route, in the order registered.
    return list(_ROUTES)[found.lastindex - 1]


def loggable(path):
    """``path`` (or a request target, with its query) as a log may write it:
    the route's template when it carries a secret, else unchanged."""
    found = _PATTERN.search(path) if _PATTERN is not None and path else None
    return path if found is None else _template(found)


def redact(text):
    """``text`` (a message naming a request line) with every secret-carrying
    target in it, up to the next space or quote, replaced by its template."""
    if _PATTERN is None or not text:
        return text
    return re.sub(r'(?:%s)[^\s\'"]*' % _PATTERN.pattern, _template, text, flags=re.IGNORECASE)
