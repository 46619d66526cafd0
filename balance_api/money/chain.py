"""The SHA-256 chain that makes every account's postings tamper-evident.

Each posting's hash covers the previous hash of its account, the posting
itself and the journal entry it belongs to, so a changed amount, a
rewritten description, a deleted or a reordered posting breaks the chain
from that point on.
"""
import hashlib

from .amounts import format_amount

GENESIS_HASH = '0' * 64


def format_timestamp(moment):
    """The canonical text of a timestamp inside a hash (UTC, microseconds)."""
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def posting_hash(previous_hash, *, account_id, amount, balance_after,
                 journal_id, created_at, operation, sender_id, receiver_id,
                 journal_amount, description):
    fields = (
        previous_hash,
        str(account_id),
        format_amount(amount),
        '' if balance_after is None else format_amount(balance_after),
        str(journal_id),
        format_timestamp(created_at),
        operation,
        str(sender_id),
        str(receiver_id),
        format_amount(journal_amount),
        description,
    )
    # A unit separator cannot appear in any field but the description, and
    # the description comes last, so the encoding is unambiguous.
    return hashlib.sha256('\x1f'.join(fields).encode('utf-8')).hexdigest()
