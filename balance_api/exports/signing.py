"""Ed25519 signatures over canonical JSON: manifests and checkpoints.

The private key lives in a PEM file (``SIGNING_KEY_FILE``), never in the
database, so someone who can write to the database cannot forge what it
signs; the public key is published (``/export/public-key``) for auditors.
"""
import base64
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

ALGORITHM = 'Ed25519'


class SigningKeyMissing(RuntimeError):
    """No private key is configured, or its file cannot be read."""


def canonical(document):
    """The bytes a signature covers: JSON with sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=False).encode('utf-8')


def create_key_file(path):
    """Write a new private key to ``path`` (readable by its owner only);
    refuses to overwrite one. Returns the public key's text."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, 'wb') as handle:
        handle.write(pem)
    return public_key_text(key)


def load_private_key(path):
    if not path:
        raise SigningKeyMissing('no signing key is configured (SIGNING_KEY_FILE)')
    try:
        with open(path, 'rb') as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
    except (OSError, ValueError) as exc:
        raise SigningKeyMissing('the signing key file cannot be read: %s'
                                % type(exc).__name__) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyMissing('the signing key is not an Ed25519 key')
    return key


def public_key_text(private_key):
    """The public key as base64 of its 32 raw bytes."""
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode('ascii')


def sign(private_key, document):
    """``document`` with a ``signature`` object added: algorithm, public key
    and the base64 signature of ``canonical(document)``."""
    signature = private_key.sign(canonical(document))
    return {**document, 'signature': {
        'algorithm': ALGORITHM, 'public_key': public_key_text(private_key),
        'value': base64.b64encode(signature).decode('ascii')}}


def verify(signed, public_key):
    """Whether ``signed`` (from ``sign``) carries a valid signature by
    ``public_key`` (base64 raw bytes, as ``public_key_text`` gives it)."""
    signature = signed.get('signature') if isinstance(signed, dict) else None
    if not isinstance(signature, dict) or signature.get('algorithm') != ALGORITHM:
        return False
    document = {key: value for key, value in signed.items() if key != 'signature'}
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature.get('value', ''), validate=True),
                   canonical(document))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
