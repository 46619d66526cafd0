"""The ledger verifier: recomputes every balance and hash chain from the postings.

It streams (accounts and postings each through one ordered cursor, merged
in Python; journal entries with their postings through a third), so memory
stays bounded however large the journal is.

What it cannot see: the chains are unkeyed, so someone with write access
who removes an account's newest postings and rewinds the account row to
match, or who rewrites every hash consistently, leaves a ledger that
verifies. Journal ids are no help either: a rolled-back change consumes a
sequence value, so gaps are normal.
"""
import datetime
from typing import List, NamedTuple, Optional

from peewee import JOIN

from ..findings import Findings, Progress, stream
from ..storage.db import read_snapshot
from .amounts import ZERO, format_amount
from .chain import GENESIS_HASH, posting_hash
from .models import EXTERNAL_ACCOUNT_ID, Account, JournalEntry, LedgerRuleStart, Posting

PROGRESS_EVERY = 100000


class Problem(NamedTuple):
    """One finding; the id fields name the rows it is about (None: not applicable)."""
    kind: str
    detail: str
    account_id: Optional[int] = None
    posting_id: Optional[int] = None
    journal_id: Optional[int] = None
    # The API key that made the journal entry, where the problem is about one
    # (auditors ask who made a suspect change).
    key_name: Optional[str] = None


class Report(NamedTuple):
    accounts: int
    postings: int
    journal_entries: int
    problems: List[Problem]
    # Problems found beyond ``max_problems``, counted but not listed.
    unlisted: int = 0

    @property
    def ok(self):
        return not self.problems and not self.unlisted


def verify_ledger(db, progress=None, max_problems=1000, progress_every=PROGRESS_EVERY):
    """Check the whole ledger.

    ``progress(kind, count)`` is called after every ``progress_every``
    postings and journal entries. At most ``max_problems`` problems are
    listed; the rest are only counted (``Report.unlisted``).
    """
    if progress_every < 1:
        raise ValueError('progress_every must be positive')
    problem = Findings(Problem, max_problems)
    tick = Progress(progress, progress_every)
    with read_snapshot(db):   # one snapshot for every pass
        accounts, postings = _check_accounts(db, problem, tick)
        entries = _check_entries(db, problem, tick)
    return Report(accounts, postings, entries, problem.listed, problem.unlisted)


def _orphan(problem, posting_id, account_id, journal_id):
    problem('orphan posting', 'posting %d names account %d, which does not exist'
            % (posting_id, account_id), account_id=account_id, posting_id=posting_id,
            journal_id=journal_id)


def _rule_start(rule):
    """The first journal id ``rule`` holds for (entries written before the
    migration that introduced it may break it)."""
    start = (LedgerRuleStart.select(LedgerRuleStart.first_journal_id)
             .where(LedgerRuleStart.rule == rule).scalar())
    return start if start is not None else 0


def _check_accounts(db, problem, tick):
    time_order_from = _rule_start('time order')
    accounts = stream(db, Account.select(Account.id, Account.balance, Account.last_hash,
                                          Account.deleted_at, Account.last_posted_at)
                       .order_by(Account.id).tuples())
    postings = stream(db, Posting.select(
        Posting.id, Posting.account, Posting.amount, Posting.balance_after, Posting.hash,
        Posting.journal, Posting.created_at, JournalEntry.created_at, JournalEntry.operation,
        JournalEntry.sender_id, JournalEntry.receiver_id, JournalEntry.amount,
        JournalEntry.transaction_description, JournalEntry.key_name)
        .join(JournalEntry, on=(Posting.journal == JournalEntry.id))
        .order_by(Posting.account, Posting.id).tuples())
    postings = iter(postings)
    pending = next(postings, None)
    account_count = posting_count = 0

    for account_id, balance, last_hash, deleted_at, last_posted_at in accounts:
        account_count += 1
        external = account_id == EXTERNAL_ACCOUNT_ID
        # ``running`` is the true sum of the amounts; ``previous_after`` the
        # stored balance after the previous posting. A posting agreeing with
        # either is consistent, so one edited amount or one edited balance
        # after is one problem, not one for every later posting.
        running = previous_after = ZERO
        chain = GENESIS_HASH
        previous_time = None
        last = None
        while pending is not None and pending[1] < account_id:
            _orphan(problem, pending[0], pending[1], pending[5])
            pending = next(postings, None)
        while pending is not None and pending[1] == account_id:
            (posting_id, _, amount, balance_after, stored_hash, journal_id, posted_at,
             created_at, operation, sender_id, receiver_id, journal_amount,
             description, key_name) = pending
            posting_count += 1
            tick('postings', posting_count)
            rows = {'account_id': account_id, 'posting_id': posting_id}
            if not isinstance(created_at, datetime.datetime):
                # SQLite stores times as text, which may be anything.
                problem('timestamp', 'journal entry %d: time %r is not a time'
                        % (journal_id, created_at), journal_id=journal_id, **rows)
            elif posted_at != created_at:
                # History by uid and date reads the posting's copy of the time.
                problem('timestamp', 'account %d posting %d: time %s differs from its journal '
                        'entry %d (%s)' % (account_id, posting_id, posted_at, journal_id,
                                           created_at), journal_id=journal_id, **rows)
            running += amount
            if not external:
                # The external account is never locked, so its postings are
                # numbered in whatever order concurrent deposits commit.
                # The ledger dates every posting after the account's previous one.
                if isinstance(posted_at, datetime.datetime):
                    if (previous_time is not None and posted_at <= previous_time
                            and journal_id >= time_order_from):
                        problem('time order', 'account %d posting %d: time %s is not after %s, '
                                'the time of the posting before it'
                                % (account_id, posting_id, posted_at, previous_time), **rows)
                    previous_time = posted_at
                if balance_after != previous_after + amount and balance_after != running:
                    problem('running balance', 'account %d posting %d: balance after is %s, '
                            'the postings sum to %s' % (account_id, posting_id,
                                                        _text(balance_after),
                                                        format_amount(running)), **rows)
                previous_after = balance_after if balance_after is not None else running
            expected = None
            if isinstance(created_at, datetime.datetime):
                expected = posting_hash(
                    '' if external else chain, account_id=account_id, amount=amount,
                    balance_after=None if external else balance_after, journal_id=journal_id,
                    created_at=created_at, operation=operation, sender_id=sender_id,
                    receiver_id=receiver_id, journal_amount=journal_amount,
                    description=description)
            if expected != stored_hash:
                problem('hash chain', 'account %d posting %d (journal %d): hash does not match '
                        'its content or its predecessor' % (account_id, posting_id, journal_id),
                        journal_id=journal_id, key_name=key_name, **rows)
            chain = stored_hash
            last = (posting_id, journal_id, operation)
            pending = next(postings, None)

        if external:
            continue
        if last is None:
            problem('no postings', 'account %d has no postings' % account_id,
                    account_id=account_id)
            continue
        if running != balance:
            problem('balance', 'account %d: stored balance %s, its postings sum to %s'
                    % (account_id, format_amount(balance), format_amount(running)),
                    account_id=account_id)
        if balance < ZERO:
            problem('negative balance', 'account %d: %s' % (account_id, format_amount(balance)),
                    account_id=account_id)
        if chain != last_hash:
            problem('hash chain', 'account %d: last hash on the account is not the hash of its '
                    'last posting (a posting was deleted or added)' % account_id,
                    account_id=account_id)
        if last_posted_at is not None and last_posted_at != previous_time:
            # A later time here would date every new posting after it.
            problem('time order', 'account %d: last posted at %s, but its newest posting %d is '
                    'of %s' % (account_id, last_posted_at, last[0], previous_time),
                    account_id=account_id)
        _check_deletion(problem, account_id, balance, deleted_at, *last)

    while pending is not None:
        _orphan(problem, pending[0], pending[1], pending[5])
        pending = next(postings, None)
    return account_count, posting_count


def _check_deletion(problem, account_id, balance, deleted_at, posting_id, journal_id,
                    operation):
    """A deleted account holds nothing and was last deleted by a user_delete;
    an account whose last posting is a user_delete is deleted (a later
    user_add revives it)."""
    rows = {'account_id': account_id, 'posting_id': posting_id, 'journal_id': journal_id}
    if deleted_at is None:
        if operation == 'user_delete':
            problem('deletion', 'account %d is not marked deleted, but its last posting %d '
                    '(journal entry %d) is a user_delete' % (account_id, posting_id, journal_id),
                    **rows)
        return
    if balance != ZERO:
        problem('deletion', 'account %d is deleted but holds %s'
                % (account_id, format_amount(balance)), account_id=account_id)
    if operation != 'user_delete':
        problem('deletion', 'account %d is deleted, but its last posting %d (journal entry %d) '
                'is a %s, not a user_delete' % (account_id, posting_id, journal_id, operation),
                **rows)


def _implied_legs(operation, sender_id, receiver_id, amount):
    """``(legs, None)``: the ``(account, signed amount)`` postings an entry
    implies; ``(None, reason)`` for an entry that implies none."""
    external = EXTERNAL_ACCOUNT_ID
    if operation == 'balance_transfer':
        if external in (sender_id, receiver_id) or sender_id == receiver_id:
            return None, 'a transfer is between two different users'
        if amount <= ZERO:
            return None, 'a transfer moves a positive amount'
        return [(sender_id, -amount), (receiver_id, amount)], None
    if operation in ('balance_add', 'balance_sub'):
        if sender_id != external or receiver_id == external:
            return None, 'a %s is from account %d to a user' % (operation, external)
        if amount <= ZERO:
            return None, 'a %s moves a positive amount' % operation
        delta = amount if operation == 'balance_add' else -amount
        return [(receiver_id, delta), (external, -delta)], None
    if operation == 'user_add':
        if sender_id != external or receiver_id == external:
            return None, 'a user_add is from account %d to a user' % external
        if amount != ZERO:
            return None, 'a user_add moves no money'
        return [(receiver_id, ZERO)], None
    if operation == 'user_delete':
        if receiver_id != external or sender_id == external:
            return None, 'a user_delete is from a user to account %d' % external
        if amount != ZERO:
            return None, 'a user_delete moves no money'
        return [(sender_id, ZERO)], None
    return None, 'unknown operation %r' % (operation,)


def _legs_text(legs):
    return ', '.join('%s%s on account %d' % ('+' if amount > ZERO else '',
                                             format_amount(amount), account_id)
                     for account_id, amount in legs)


def _check_entries(db, problem, tick):
    """Every entry's postings are exactly the legs its operation implies;
    every posting has its entry."""
    legs = stream(db, JournalEntry.select(
        JournalEntry.id, JournalEntry.operation, JournalEntry.sender_id,
        JournalEntry.receiver_id, JournalEntry.amount, JournalEntry.key_name, Posting.account,
        Posting.amount)
        .join(Posting, join_type=JOIN.LEFT_OUTER, on=(Posting.journal == JournalEntry.id))
        .order_by(JournalEntry.id, Posting.id).tuples())
    count = 0
    current = None

    def close(entry_id, operation, sender_id, receiver_id, amount, key_name, found):
        rows = {'journal_id': entry_id, 'key_name': key_name}
        if not found:
            problem('no postings', 'journal entry %d has no postings' % entry_id, **rows)
            return
        total = sum((leg_amount for _, leg_amount in found), ZERO)
        if total != ZERO:
            problem('unbalanced entry', 'journal entry %d: postings sum to %s'
                    % (entry_id, format_amount(total)), **rows)
            return
        implied, reason = _implied_legs(operation, sender_id, receiver_id, amount)
        entry = 'journal entry %d (%s of %s from %d to %d)' % (
            entry_id, operation, format_amount(amount), sender_id, receiver_id)
        if reason is not None:
            problem('entry legs', '%s: %s' % (entry, reason), **rows)
        elif sorted(found) != sorted(implied):
            problem('entry legs', '%s has postings %s; it implies %s'
                    % (entry, _legs_text(found), _legs_text(implied)), **rows)

    for (entry_id, operation, sender_id, receiver_id, amount, key_name, account_id,
         leg_amount) in legs:
        if current is None or entry_id != current[0]:
            if current is not None:
                close(*current)
            current = (entry_id, operation, sender_id, receiver_id, amount, key_name, [])
            count += 1
            tick('journal entries', count)
        if account_id is not None:
            current[6].append((account_id, leg_amount))
    if current is not None:
        close(*current)

    orphans = (Posting.select(Posting.id, Posting.journal, Posting.account)
               .join(JournalEntry, join_type=JOIN.LEFT_OUTER,
                     on=(Posting.journal == JournalEntry.id))
               .where(JournalEntry.id.is_null()).order_by(Posting.id).tuples())
    for posting_id, journal_id, account_id in stream(db, orphans):
        problem('orphan posting', 'posting %d names journal entry %d, which does not exist'
                % (posting_id, journal_id), account_id=account_id, posting_id=posting_id,
                journal_id=journal_id)
    return count


def _text(amount):
    return 'missing' if amount is None else format_amount(amount)
