"""What a discount code looks like, and drawing new ones.

A code is 8 characters from 32 that cannot be mistaken for one another
when read aloud or typed from a receipt: the digits 2-9 and the uppercase
letters without I and O (so no 0/O, no 1/I). 32 symbols are 5 bits each,
so 5 random bytes from ``secrets`` make exactly one code, every code
equally likely: 2^40 (about 1.1 * 10^12) codes per brand.

Drawing goes through base32, which turns 5 bytes into 8 symbols of its own
32-letter alphabet in C; one translation table maps them onto this one.
A million codes take a fraction of a second.
"""
import base64
import re
import secrets

ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ'
LENGTH = 8
PATTERN = '^[%s]{%d}$' % (ALPHABET, LENGTH)
_CODE = re.compile(PATTERN)
_BASE32 = b'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
_TO_ALPHABET = bytes.maketrans(_BASE32, ALPHABET.encode('ascii'))
# Random bytes per code: 5 bytes are 40 bits, 8 symbols of 5 bits.
_BYTES_PER_CODE = LENGTH * 5 // 8


def is_code(text):
    return isinstance(text, str) and _CODE.fullmatch(text) is not None


def draw(count):
    """``count`` distinct random codes, in the order drawn."""
    found = {}
    while len(found) < count:
        missing = count - len(found)
        symbols = base64.b32encode(secrets.token_bytes(missing * _BYTES_PER_CODE))
        text = symbols.translate(_TO_ALPHABET).decode('ascii')
        for start in range(0, len(text), LENGTH):
            # A dict keeps the order drawn and drops the (rare) repeat.
            found[text[start:start + LENGTH]] = None
    return list(found)
