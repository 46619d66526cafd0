"""The request path as the client sent it, still percent-encoded.

WSGI's PATH_INFO is decoded by the server: ``%2F`` has become a slash and
``%25`` a percent sign, and nothing says which was which. Servers also pass
the request target as sent: gunicorn in RAW_URI, others (uWSGI, mod_wsgi)
in REQUEST_URI.
"""
from urllib.parse import unquote, urlsplit


def raw_path(environ):
    """The path of the request target as sent, or None when the server does not pass it."""
    target = environ.get('RAW_URI') or environ.get('REQUEST_URI')
    if not target:
        return None
    if target.startswith('/'):
        return target.split('?', 1)[0].split('#', 1)[0]
    # absolute-form: http://host/path?query
    return urlsplit(target).path


def path_field_as_sent(req, name, value):
    """Path field ``{name}`` of the request's route, whose decoded ``value``
    Falcon routed on, in its percent-encoded form, to be decoded exactly once.

    The field is found counting segments from the end of the path, which a
    prefix the application is mounted under (SCRIPT_NAME) does not move;
    it is used only if it decodes to ``value``. Without the target as sent,
    the decoded value is encoded again: only ``%`` changes when decoded.
    """
    sent = raw_path(req.env)
    if sent is not None:
        template = req.uri_template.split('/')
        from_end = len(template) - template.index('{%s}' % name)
        segments = sent.split('/')
        if len(segments) >= from_end:
            field = segments[-from_end]
            if unquote(field, errors='replace') == value:
                return field
    return value.replace('%', '%25')
