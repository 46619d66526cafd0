"""Persistence: the tables of the ledger, as peewee models.

The schema itself is created by the scripts in ``migrations/``; these
models must describe the same columns.
"""
import peewee

from ..storage.models import BaseModel
from .amounts import MoneyField

# The counterparty of money entering or leaving the system (add and sub).
# Its row exists for referential integrity; it is never locked or updated,
# so deposits do not serialize on it, and its balance is implied by its
# postings.
EXTERNAL_ACCOUNT_ID = 0


class Account(BaseModel):
    """A user's balance, or the external counterparty (id 0)."""

    id = peewee.BigIntegerField(primary_key=True)
    balance = MoneyField()
    # Hash of the newest posting, so a new posting chains without a read.
    last_hash = peewee.CharField(max_length=64)
    email = peewee.CharField(max_length=254, null=True, unique=True)
    msisdn = peewee.CharField(max_length=16, null=True, unique=True)
    created_at = peewee.DateTimeField()
    deleted_at = peewee.DateTimeField(null=True)
    # Time of the newest posting: a new one is dated at least a microsecond
    # later, so the account's chain is in time order even if the clock steps
    # back. NULL on the external account and on rows loaded in bulk.
    last_posted_at = peewee.DateTimeField(null=True)


class JournalEntry(BaseModel):
    """One state change, as history shows it."""

    id = peewee.BigAutoField()
    created_at = peewee.DateTimeField(index=True)
    operation = peewee.CharField(max_length=16)
    sender_id = peewee.BigIntegerField()
    receiver_id = peewee.BigIntegerField()
    amount = MoneyField(column_name='sum')
    transaction_description = peewee.CharField(max_length=255)
    # The API key that made the change (None before keys, or with auth off).
    key_name = peewee.CharField(max_length=64, null=True)


class Posting(BaseModel):
    """One leg of a journal entry on one account; the legs of an entry sum to zero."""

    id = peewee.BigAutoField()
    journal = peewee.ForeignKeyField(JournalEntry, backref='postings', index=False)
    account = peewee.ForeignKeyField(Account, backref='postings', index=False)
    amount = MoneyField()
    # NULL on the external account, whose balance is never maintained.
    balance_after = MoneyField(null=True)
    created_at = peewee.DateTimeField()
    hash = peewee.CharField(max_length=64)

    class Meta:
        indexes = (
            # History by uid and date range reads exactly the matching legs.
            (('account', 'created_at'), False),
            # History by uid reads an account's legs in journal id order (0009).
            (('account', 'journal'), False),
            (('journal',), False),
        )


class LedgerRuleStart(BaseModel):
    """The first journal entry a rule of the ledger holds for (see ``verify``):
    entries written before the migration that introduced the rule may break it."""

    rule = peewee.CharField(max_length=32, primary_key=True)
    first_journal_id = peewee.BigIntegerField()
