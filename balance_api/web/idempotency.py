"""Exactly-once execution of mutating requests sent with an Idempotency-Key.

The key is claimed, the operation runs and its answer is stored in one
transaction, so a key is recorded exactly when its effect is. A retry of
the same request gets the stored answer; a concurrent retry waits on the
key's row lock until the first one commits, then gets the stored answer
too. Refusals (4xx) are stored like successes, so a retry can never turn a
refused transfer into an executed one; failures (5xx) roll everything back
and may be retried.
"""
import datetime
import hashlib
import json
import re
from typing import NamedTuple

import peewee

from .. import errors
from ..clock import utc_now
from ..storage.db import write_transaction
from ..storage.models import BaseModel


class IdempotencyRecord(BaseModel):
    """The first answer to a request sent with an Idempotency-Key (every
    domain's mutating requests share the one table)."""

    # The API key the Idempotency-Key belongs to ('' with auth off, and for
    # records stored before keys existed).
    owner = peewee.CharField(max_length=64)
    key = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)
    status = peewee.IntegerField()
    body = peewee.TextField()
    created_at = peewee.DateTimeField(index=True)

    class Meta:
        primary_key = peewee.CompositeKey('owner', 'key')


# Visible ASCII without the comma that joins repeated header fields.
KEY_PATTERN = re.compile(r'[\x21-\x2b\x2d-\x7e]{1,255}')


class Outcome(NamedTuple):
    status: int
    body: object
    replayed: bool = False


def fingerprint(method, route, path_params, payload):
    """What identifies a request: its method, its route (the URI template),
    the parsed path parameters and the validated input, so two spellings of
    one path (/balance/3 and //balance/3) are the same request."""
    return _digest([method, route, path_params, payload])


def earlier_fingerprints(method, path, payload):
    """The fingerprints releases before 2026-12 stored for this request (the
    raw path, and an empty description told apart from a missing one), so a
    retry that spans the upgrade is still a replay, not a 518. Keys stored
    then are pruned within days (``prune``), and this can go with them."""
    variants = [payload]
    if payload.get('trans_desc', '') is None:
        variants.append({**payload, 'trans_desc': ''})
    return {_digest([method, path, variant]) for variant in variants}


def _digest(parts):
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(',', ':'))
    return hashlib.sha256(canonical.encode('utf-8')).hexdigest()


def validate_key(key):
    if key is not None and not KEY_PATTERN.fullmatch(key):
        raise errors.InvalidIdempotencyKey()
    return key


def execute(db, key, request_fingerprint, operation, clock=utc_now, also_matching=None,
            owner=''):
    """Run ``operation() -> Outcome`` once per key of ``owner`` (an API key's
    name: the same string from two API keys names two requests).

    Without a key the operation simply runs; it owns its transaction.
    ``also_matching()``, when given, names other fingerprints a stored
    record of this same request may carry (``earlier_fingerprints``).
    """
    if key is None:
        return operation()

    with write_transaction(db):
        claimed = (IdempotencyRecord
                   .insert(owner=owner, key=key, fingerprint=request_fingerprint, status=0,
                           body='', created_at=clock())
                   .on_conflict_ignore().as_rowcount().execute())
        mine = (IdempotencyRecord.owner == owner) & (IdempotencyRecord.key == key)
        if claimed and owner and _legacy_records_exist():
            # A retry of a request first sent before keys existed (stored as
            # nobody's) is a replay of it, not a second execution.
            legacy = IdempotencyRecord.get_or_none(
                (IdempotencyRecord.owner == '') & (IdempotencyRecord.key == key))
            if legacy is not None:
                IdempotencyRecord.delete().where(mine).execute()
                claimed, mine = False, (IdempotencyRecord.owner == '') & (
                    IdempotencyRecord.key == key)
        if not claimed:
            record = IdempotencyRecord.get(mine)
            if record.fingerprint != request_fingerprint and (
                    also_matching is None or record.fingerprint not in also_matching()):
                raise errors.IdempotencyKeyReused()
            return Outcome(record.status, json.loads(record.body), replayed=True)

        try:
            # No savepoint is needed to keep the claim when the operation is
            # refused: the ledger checks every rule before its first write.
            outcome = operation()
        except errors.ApiError as exc:
            if exc.status.startswith('5'):
                raise
            outcome = Outcome(int(exc.status[:3]), exc.to_dict())

        (IdempotencyRecord
         .update(status=outcome.status, body=json.dumps(outcome.body))
         .where(mine).execute())
        return outcome


_legacy_checked = []


def _legacy_records_exist():
    """Whether records stored before keys existed were still there when this
    process first looked (they are pruned within days; new ones are never made
    with auth on)."""
    if not _legacy_checked:
        _legacy_checked.append(
            IdempotencyRecord.select().where(IdempotencyRecord.owner == '').exists())
    return _legacy_checked[0]


def prune(db, older_than, clock=utc_now):
    """Forget keys older than ``older_than`` (a timedelta); returns how many."""
    if older_than < datetime.timedelta(hours=24):
        raise ValueError('idempotency keys are kept at least 24 hours')
    with write_transaction(db):
        return (IdempotencyRecord.delete()
                .where(IdempotencyRecord.created_at < clock() - older_than).execute())
