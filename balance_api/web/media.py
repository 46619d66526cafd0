"""Request and response bodies: JSON and forms, read exactly, as UTF-8.

Amounts in JSON parse to ``Decimal`` (never float), numbers with an
exponent and repeated keys are refused, and form bodies may carry UTF-8 as
it is or percent-escaped.
"""
import json
import urllib.parse
from decimal import Decimal

import falcon
import falcon.media
from falcon.uri import parse_query_string


def _refuse_constant(name):
    raise ValueError('%s is not a number' % name)


class ExponentNumber:
    """A JSON number written with an exponent (``1e0``, ``12345e-2``).

    Amounts and ids are plain decimals, in JSON as in forms; no field accepts
    this, so each refuses it with its own code, as it would the string "1e0".
    """

    __slots__ = ('text',)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _parse_fraction(text):
    if 'e' in text or 'E' in text:
        return ExponentNumber(text)
    return Decimal(text)


def _object_without_repeated_keys(pairs):
    fields = dict(pairs)
    if len(fields) != len(pairs):
        # Which one counts would be up to the parser; the form handler refuses
        # a repeated field too.
        raise ValueError('a JSON object repeats a key')
    return fields


def _load_json(text):
    try:
        return json.loads(text, parse_float=_parse_fraction, parse_constant=_refuse_constant,
                          object_pairs_hook=_object_without_repeated_keys)
    except RecursionError:
        # Deeply nested arrays fit in a small body; they are malformed, not a crash.
        raise ValueError('JSON nested too deeply') from None


class FormText(str):
    """A value read from a form body, where every value is text: a field that
    takes a JSON number may take its decimal text from a form, and only from one."""

    __slots__ = ()


class FormHandler(falcon.media.URLEncodedFormHandler):
    """Form bodies are UTF-8, percent-escaped or not (``curl -d trans_desc=café``
    sends the bytes as they are); anything that is not UTF-8 is malformed.

    Falcon would refuse unescaped non-ASCII bytes, and decode escapes that
    are not UTF-8 to U+FFFD, which a client may also send on purpose
    (%EF%BF%BD), so the two could not be told apart afterwards.
    """

    def _deserialize(self, body):
        try:
            text = body.decode('utf-8')
            if '%' in text:
                urllib.parse.parse_qsl(text, keep_blank_values=True, encoding='utf-8',
                                       errors='strict')
        except ValueError as exc:  # UnicodeDecodeError included
            raise falcon.MediaMalformedError('URL-encoded') from exc
        fields = parse_query_string(text, keep_blank=self._keep_blank, csv=self._csv)
        return {name: FormText(value) if isinstance(value, str) else
                [FormText(item) for item in value] for name, value in fields.items()}


def install(app):
    """Make ``app`` read and write bodies with these handlers."""
    json_handler = falcon.media.JSONHandler(loads=_load_json)
    app.req_options.media_handlers = falcon.media.Handlers({
        falcon.MEDIA_JSON: json_handler,
        falcon.MEDIA_URLENCODED: FormHandler(keep_blank=True),
    })
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
