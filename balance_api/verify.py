"""The ledger verifier: recomputes every balance and hash chain from the postings.

It streams (accounts and postings each through one ordered cursor, merged
in Python), so memory stays bounded however large the journal is.
"""
from typing import List, NamedTuple

from peewee import JOIN
from playhouse.postgres_ext import ServerSide

from .chain import GENESIS_HASH, posting_hash
from .db import is_postgres
from .models import EXTERNAL_ACCOUNT_ID, Account, JournalEntry, Posting
from .money import ZERO, format_amount

FETCH_ROWS = 5000


class Problem(NamedTuple):
    kind: str
    detail: str


class Report(NamedTuple):
    accounts: int
    postings: int
    journal_entries: int
    problems: List[Problem]

    @property
    def ok(self):
        return not self.problems


def _stream(db, query):
    return ServerSide(query, array_size=FETCH_ROWS) if is_postgres(db) else query.iterator()


def verify_ledger(db, progress=None, max_problems=1000):
    """Check the whole ledger; ``progress(kind, count)`` is called now and then."""
    problems = []

    def problem(kind, detail):
        if len(problems) < max_problems:
            problems.append(Problem(kind, detail))

    with db.atomic():
        # One snapshot for both passes (PostgreSQL: REPEATABLE READ).
        if is_postgres(db):
            db.execute_sql('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
        accounts, postings = _check_accounts(db, problem, progress)
        entries = _check_entries(db, problem, progress)
    return Report(accounts, postings, entries, problems)


def _check_accounts(db, problem, progress):
    accounts = _stream(db, Account.select(Account.id, Account.balance, Account.last_hash)
                       .order_by(Account.id).tuples())
    postings = _stream(db, Posting.select(
        Posting.id, Posting.account, Posting.amount, Posting.balance_after, Posting.hash,
        Posting.journal, Posting.created_at, JournalEntry.created_at, JournalEntry.operation,
        JournalEntry.sender_id, JournalEntry.receiver_id, JournalEntry.amount,
        JournalEntry.transaction_description)
        .join(JournalEntry, on=(Posting.journal == JournalEntry.id))
        .order_by(Posting.account, Posting.id).tuples())
    postings = iter(postings)
    pending = next(postings, None)
    account_count = posting_count = 0

    for account_id, balance, last_hash in accounts:
        account_count += 1
        running, chain = ZERO, GENESIS_HASH
        while pending is not None and pending[1] < account_id:
            problem('orphan posting', 'posting %d names account %d, which does not exist'
                    % (pending[0], pending[1]))
            pending = next(postings, None)
        seen = 0
        while pending is not None and pending[1] == account_id:
            (posting_id, _, amount, balance_after, stored_hash, journal_id, posted_at,
             created_at, operation, sender_id, receiver_id, journal_amount,
             description) = pending
            posting_count += 1
            seen += 1
            if progress and posting_count % 100000 == 0:
                progress('postings', posting_count)
            external = account_id == EXTERNAL_ACCOUNT_ID
            if posted_at != created_at:
                # History by uid and date reads the posting's copy of the time.
                problem('timestamp', 'account %d posting %d: time %s differs from its journal '
                        'entry %d (%s)' % (account_id, posting_id, posted_at, journal_id,
                                           created_at))
            running += amount
            if not external and balance_after != running:
                problem('running balance', 'account %d posting %d: balance after is %s, the '
                        'postings sum to %s' % (account_id, posting_id,
                                                _text(balance_after), format_amount(running)))
                running = balance_after if balance_after is not None else running
            expected = posting_hash(
                '' if external else chain, account_id=account_id, amount=amount,
                balance_after=None if external else balance_after, journal_id=journal_id,
                created_at=created_at, operation=operation, sender_id=sender_id,
                receiver_id=receiver_id, journal_amount=journal_amount,
                description=description)
            if expected != stored_hash:
                problem('hash chain', 'account %d posting %d (journal %d): hash does not match '
                        'its content or its predecessor' % (account_id, posting_id, journal_id))
            chain = stored_hash
            pending = next(postings, None)

        if account_id == EXTERNAL_ACCOUNT_ID:
            continue
        if seen == 0:
            problem('no postings', 'account %d has no postings' % account_id)
            continue
        if running != balance:
            problem('balance', 'account %d: stored balance %s, its postings sum to %s'
                    % (account_id, format_amount(balance), format_amount(running)))
        if balance < ZERO:
            problem('negative balance', 'account %d: %s' % (account_id, format_amount(balance)))
        if chain != last_hash:
            problem('hash chain', 'account %d: last hash on the account is not the hash of its '
                    'last posting (a posting was deleted or added)' % account_id)

    while pending is not None:
        problem('orphan posting', 'posting %d names account %d, which does not exist'
                % (pending[0], pending[1]))
        pending = next(postings, None)
    return account_count, posting_count


def _check_entries(db, problem, progress):
    """Every entry has postings that sum to zero; every posting has its entry."""
    legs = _stream(db, JournalEntry.select(JournalEntry.id, Posting.amount)
                   .join(Posting, join_type=JOIN.LEFT_OUTER,
                         on=(Posting.journal == JournalEntry.id))
                   .order_by(JournalEntry.id).tuples())
    count, current, total, legs_seen = 0, None, ZERO, 0

    def close(entry_id):
        if legs_seen == 0:
            problem('no postings', 'journal entry %d has no postings' % entry_id)
        elif total != ZERO:
            problem('unbalanced entry', 'journal entry %d: postings sum to %s'
                    % (entry_id, format_amount(total)))

    for entry_id, amount in legs:
        if entry_id != current:
            if current is not None:
                close(current)
            current, total, legs_seen = entry_id, ZERO, 0
            count += 1
            if progress and count % 100000 == 0:
                progress('journal entries', count)
        if amount is not None:
            total += amount
            legs_seen += 1
    if current is not None:
        close(current)

    orphans = (Posting.select(Posting.id, Posting.journal)
               .join(JournalEntry, join_type=JOIN.LEFT_OUTER,
                     on=(Posting.journal == JournalEntry.id))
               .where(JournalEntry.id.is_null()).tuples())
    for posting_id, journal_id in _stream(db, orphans):
        problem('orphan posting', 'posting %d names journal entry %d, which does not exist'
                % (posting_id, journal_id))
    return count


def _text(amount):
    return 'missing' if amount is None else format_amount(amount)
