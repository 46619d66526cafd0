"""Text from requests, made safe to write into a log line.

A client controls headers, paths and request ids. Written raw, a line
break or a C1 control (U+0085 NEXT LINE, U+009B CONTROL SEQUENCE
INTRODUCER) would start a forged line or drive the terminal of whoever
reads the log.
"""
import re

# What the access log writes as is: printable ASCII except the quote that
# delimits its fields and the backslash that starts an escape.
_NOT_PLAIN_ASCII = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]')
_NAMED = {'\\': '\\\\', '"': '\\"', '\b': '\\b', '\n': '\\n', '\r': '\\r', '\t': '\\t',
          '\v': '\\v'}


def _hex_escape(character):
    # Characters up to U+00FF are the bytes a server read as latin-1;
    # above that, the character's UTF-8 bytes.
    code = ord(character)
    if code <= 0xff:
        return '\\x%02x' % code
    return ''.join('\\x%02x' % byte for byte in character.encode('utf-8', 'surrogatepass'))


def _escape(match):
    character = match.group()
    return _NAMED.get(character) or _hex_escape(character)


def log_field(text):
    """``text`` as Apache writes a logged field: printable ASCII stays, ``"`` and
    ``\\`` get a backslash, every other character becomes ``\\xhh`` per byte
    (``\\n``, ``\\t`` and the like for the usual controls)."""
    return _NOT_PLAIN_ASCII.sub(_escape, text)


def quoted_log_field(text):
    """``text`` as one double-quoted field of a log line."""
    return '"%s"' % log_field(text)


def one_line(text):
    """``text`` with every non-printable character escaped, so that a
    message, tracebacks included, takes exactly one line."""
    if text.isprintable():
        return text
    return ''.join(character if character.isprintable() else
                   _NAMED.get(character) or _hex_escape(character) for character in text)
