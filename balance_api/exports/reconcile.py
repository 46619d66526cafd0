"""Reconciliation: every account's opening balance plus its postings in a
range equals its closing balance, and the money that entered minus what
left equals the change in the users' total.

The opening and closing balances come from ``journal.account_figures``,
the computation the export manifests use; the postings and entries are
read in the same snapshot (on PostgreSQL also only up to the settled id).
"""
from typing import List, NamedTuple

from ..money.amounts import ZERO, format_amount
from ..money.models import EXTERNAL_ACCOUNT_ID, Posting
from . import run
from .journal import JOURNAL, account_figures, money

# Breaks listed; the rest are counted.
MAX_BREAKS = 1000


class Reconciliation(NamedTuple):
    accounts: int
    breaks: List[dict]
    unlisted: int = 0

    @property
    def ok(self):
        return not self.breaks and not self.unlisted

    def to_dict(self):
        return {'ok': self.ok, 'accounts': self.accounts, 'breaks': self.breaks,
                'unlisted_breaks': self.unlisted}


def _postings(db, query, settled):
    """Every user posting in the range, by account then time."""
    rows = Posting.select(Posting.account, Posting.journal, Posting.amount,
                          Posting.balance_after).where(
        Posting.account != EXTERNAL_ACCOUNT_ID, Posting.created_at >= query.start)
    if query.end is not None:
        rows = rows.where(Posting.created_at < query.end)
    if settled is not None:
        rows = rows.where(Posting.journal <= settled)
    rows = rows.order_by(Posting.account, Posting.created_at, Posting.id)
    for batch in run.batches(db, rows, name='postings'):
        yield from batch


def reconcile(db, query):
    """Reconcile the days ``query`` covers (its uid and kinds are not used)."""
    query = query._replace(uid=None, kinds=())
    breaks, unlisted = [], 0

    def found(entry):
        nonlocal unlisted
        if len(breaks) < MAX_BREAKS:
            breaks.append(entry)
        else:
            unlisted += 1

    settled = JOURNAL.settled_id(db)
    with run.snapshot(db, JOURNAL.probe):
        tally = JOURNAL.tally(query)
        for batch in run.batches(db, JOURNAL.rows(query, settled)):
            for record in JOURNAL.records(db, batch):
                JOURNAL.count(tally, record)
        postings = _postings(db, query, settled)
        pending = next(postings, None)
        accounts, users_change = 0, ZERO
        for account_id, opening, closing, _ in account_figures(db, query.start, query.end,
                                                               settled):
            accounts += 1
            users_change += closing - opening
            total, previous, involved = ZERO, opening, []
            while pending is not None and pending[0] < account_id:
                pending = next(postings, None)
            while pending is not None and pending[0] == account_id:
                _, journal_id, amount, after = pending
                amount, after = money(amount), money(after)
                total += amount
                if after is None or previous + amount != after:
                    involved.append(journal_id)
                previous = after if after is not None else previous + amount
                pending = next(postings, None)
            if opening + total != closing or involved:
                found({'kind': 'account', 'account_id': account_id,
                       'opening_balance': format_amount(opening),
                       'postings_sum': format_amount(total),
                       'closing_balance': format_amount(closing),
                       'difference': format_amount(closing - opening - total),
                       'entries': involved})
    deposits, withdrawals = tally.sums['balance_add'], tally.sums['balance_sub']
    if deposits - withdrawals != users_change:
        found({'kind': 'system', 'deposits': format_amount(deposits),
               'withdrawals': format_amount(withdrawals),
               'users_change': format_amount(users_change),
               'difference': format_amount(users_change - deposits + withdrawals),
               'entries': []})
    return Reconciliation(accounts, breaks, unlisted)
