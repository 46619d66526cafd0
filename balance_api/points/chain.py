"""The SHA-256 chain over each member's points entries.

Each entry's hash covers the member's previous hash, the entry itself and,
for a negative entry, the grants it drew from, so a changed amount, a
moved draw, a deleted or a reordered entry breaks the chain from there on.
"""
import hashlib

GENESIS_HASH = '0' * 64


def format_timestamp(moment):
    """The canonical text of a time inside a hash (UTC, microseconds)."""
    return moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def entry_hash(previous_hash, *, entry_id, member_id, club, wallet, payer, event_type, amount,
               event_at, expires_on, balance_after, transaction_id, draws):
    """``draws`` are ``(grant_id, points)`` pairs, in the order drawn."""
    fields = [
        previous_hash, str(entry_id), str(member_id), club, wallet, payer, event_type,
        str(amount), format_timestamp(event_at),
        '' if expires_on is None else expires_on.isoformat(), str(balance_after),
        transaction_id or '',
        ' '.join('%d:%d' % draw for draw in draws),
    ]
    # Unit separators cannot appear in slugs, payers or ids (their schemas
    # refuse control characters), so the encoding is unambiguous.
    return hashlib.sha256('\x1f'.join(fields).encode('utf-8')).hexdigest()
