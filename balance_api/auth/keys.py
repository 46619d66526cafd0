"""Creating, listing, revoking and verifying API keys.

A token is 256 random bits, URL-safe base64; the database holds its
SHA-256 only. A token is looked up by that digest through a unique index:
the digest of a guess shares nothing with the digests stored, so the time a
look-up takes says nothing about which tokens exist, and the stored digest
is compared with the computed one in constant time.

Each worker keeps the keys it verified for at most ``RECHECK_SECONDS`` (one
database read per key per second at most), so a revocation takes effect on
every worker within a second.
"""
import datetime
import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import NamedTuple, Optional

import peewee

from ..clock import utc_now
from ..storage.db import write_transaction
from . import errors, permits
from .caller import Caller
from .models import ApiKey

log = logging.getLogger('balance_api.auth')

BOOTSTRAP_NAME = 'bootstrap'
RECHECK_SECONDS = 1.0
# last_used_at is written at most this often per key and worker.
LAST_USED_EVERY = datetime.timedelta(minutes=1)
NAME_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}')
# URL-safe base64 of 32 bytes.
TOKEN_PATTERN = re.compile(r'[A-Za-z0-9_-]{43}')


class KeyTaken(ValueError):
    """Key names are unique."""


class KeyNotFound(ValueError):
    pass


class KeyInfo(NamedTuple):
    name: str
    permits: tuple
    uid: Optional[int]
    created_at: datetime.datetime
    expires_on: Optional[datetime.date]
    last_used_at: Optional[datetime.datetime]
    revoked_at: Optional[datetime.datetime]


def token_digest(token):
    return hashlib.sha256(token.encode('ascii')).hexdigest()


def check_name(name):
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError('a key name is 1 to 64 of A-Z, a-z, 0-9, "_", ".", ":" and "-", '
                         'first a letter or digit')
    return name


def create_key(db, name, key_permits, uid=None, expires_on=None, clock=utc_now):
    """Store a new key; returns its token (shown once, stored nowhere)."""
    check_name(name)
    key_permits = permits.parse(','.join(key_permits))
    token = secrets.token_urlsafe(32)
    with write_transaction(db):
        inserted = (ApiKey.insert(name=name, token_hash=token_digest(token),
                                  permits=','.join(key_permits), uid=uid, created_at=clock(),
                                  expires_on=expires_on)
                    .on_conflict_ignore().as_rowcount().execute())
    if not inserted:
        raise KeyTaken('a key named %s exists already' % name)
    return token


def create_bootstrap_key(db, clock=utc_now):
    """The first admin key of a database without keys; returns its token, or
    None when the database has keys (another server may have just made it)."""
    with write_transaction(db):
        if is_postgres_db(db):
            # Two servers starting at once: one creates, the other finds it.
            db.execute_sql('LOCK TABLE api_key IN SHARE ROW EXCLUSIVE MODE')
        if ApiKey.select().exists():
            return None
        token = secrets.token_urlsafe(32)
        ApiKey.insert(name=BOOTSTRAP_NAME, token_hash=token_digest(token),
                      permits=permits.ADMIN, created_at=clock()).execute()
        return token


def is_postgres_db(db):
    return isinstance(db, peewee.PostgresqlDatabase)


def list_keys(db):
    with db.connection_context():
        return [KeyInfo(key.name, tuple(key.permits.split(',')), key.uid, key.created_at,
                        key.expires_on, key.last_used_at, key.revoked_at)
                for key in ApiKey.select().order_by(ApiKey.name)]


def revoke_key(db, name, clock=utc_now):
    with write_transaction(db):
        found = ApiKey.select(ApiKey.revoked_at).where(ApiKey.name == name).first()
        if found is None:
            raise KeyNotFound('no key is named %s' % name)
        if found.revoked_at is None:
            ApiKey.update(revoked_at=clock()).where(ApiKey.name == name).execute()


def revoke_keys_of_user(db, uid, clock=utc_now):
    """Revoke every key bound to ``uid`` (the user is being deleted: a user
    created later under the same id is someone else). Inside the caller's
    transaction."""
    with write_transaction(db):
        return (ApiKey.update(revoked_at=clock())
                .where((ApiKey.uid == uid) & ApiKey.revoked_at.is_null()).execute())


class _Verified(NamedTuple):
    key_id: int
    token_hash: str
    caller: Caller
    expires_on: Optional[datetime.date]
    revoked: bool
    checked_at: float


class Authenticator:
    """Turns a request's credentials into a ``Caller``, or raises 401."""

    def __init__(self, db, clock=utc_now, monotonic=time.monotonic):
        self.db = db
        self.clock = clock
        self.monotonic = monotonic
        self._verified = {}
        self._last_used = {}

    def caller(self, token):
        """The caller a token (from ``token_from_headers``) stands for."""
        digest = token_digest(token)
        now = self.monotonic()
        found = self._verified.get(digest)
        if found is None or now - found.checked_at >= RECHECK_SECONDS:
            found = self._load(digest, now)
        if found is None:
            raise errors.UnknownKey()
        if not hmac.compare_digest(found.token_hash, digest):
            raise errors.UnknownKey()
        if found.revoked:
            raise errors.RevokedKey(found.caller.key_name)
        if found.expires_on is not None and self.clock().date() > found.expires_on:
            raise errors.ExpiredKey(found.caller.key_name)
        self._note_use(found)
        return found.caller

    def forget_user(self, uid):
        """Drop the keys bound to ``uid`` from this worker's memory (the user
        is being deleted: its keys are revoked; the next request re-reads)."""
        for digest, found in list(self._verified.items()):
            if found.caller.uid == uid:
                self._verified.pop(digest, None)

    def _load(self, digest, now):
        row = (ApiKey.select(ApiKey.id, ApiKey.token_hash, ApiKey.name, ApiKey.permits,
                             ApiKey.uid, ApiKey.expires_on, ApiKey.revoked_at)
               .where(ApiKey.token_hash == digest).tuples().first())
        if row is None:
            self._verified.pop(digest, None)
            return None
        key_id, stored, name, key_permits, uid, expires_on, revoked_at = row
        found = _Verified(key_id, stored, Caller(name, tuple(key_permits.split(',')), uid),
                          expires_on, revoked_at is not None, now)
        self._verified[digest] = found
        return found

    def _note_use(self, found):
        moment = self.clock()
        last = self._last_used.get(found.key_id)
        if last is not None and moment - last < LAST_USED_EVERY:
            return
        self._last_used[found.key_id] = moment
        try:
            ApiKey.update(last_used_at=moment).where(ApiKey.id == found.key_id).execute()
        except peewee.OperationalError as exc:
            # Busy (SQLite) or briefly unreachable: the use is noted next time.
            log.warning('could not note the use of key %s: %s', found.caller.key_name, exc)
            self._last_used.pop(found.key_id, None)


def token_from_path(segment, authorization, client_authorization):
    """The token a route takes from its path (``segment``, decoded), where the
    existing clients of that route send it; raises 401 when it is empty or
    malformed, or when a header sends a key too (one key, sent once)."""
    if authorization is not None or client_authorization is not None:
        raise errors.MalformedCredentials()
    if not segment:
        raise errors.MissingCredentials()
    if not TOKEN_PATTERN.fullmatch(segment):
        raise errors.MalformedCredentials()
    return segment


def token_from_headers(authorization, client_authorization):
    """The token sent, or None when neither header is; raises 401 when malformed."""
    if authorization is not None and client_authorization is not None:
        raise errors.MalformedCredentials()
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(' ')
        if scheme.lower() != 'bearer':
            raise errors.MalformedCredentials()
        token = token.strip()
    elif client_authorization is not None:
        token = client_authorization.strip()
    else:
        return None
    if not TOKEN_PATTERN.fullmatch(token):
        # Not the shape of a token this service makes: no look-up needed.
        raise errors.MalformedCredentials()
    return token
