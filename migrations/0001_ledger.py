"""Accounts, the double-entry journal, and idempotency records."""
import datetime

from peewee import (BigAutoField, BigIntegerField, CharField, Check, DateTimeField,
                    ForeignKeyField, IntegerField, Model, SqliteDatabase, TextField)

from balance_api.money.amounts import MoneyField

from balance_api.money.chain import GENESIS_HASH


def _models(db):
    # A frozen copy of the schema at this point; later changes are new scripts.
    if isinstance(db, SqliteDatabase):
        # Amounts are TEXT on SQLite; REAL is exact enough to test a sign.
        non_negative = Check("CAST(balance AS REAL) >= 0")
    else:
        non_negative = Check('balance >= 0')

    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Account(Base):
        id = BigIntegerField(primary_key=True)
        balance = MoneyField(constraints=[non_negative])
        last_hash = CharField(max_length=64)
        email = CharField(max_length=254, null=True, unique=True)
        msisdn = CharField(max_length=16, null=True, unique=True)
        created_at = DateTimeField()
        deleted_at = DateTimeField(null=True)

    class JournalEntry(Base):
        id = BigAutoField()
        created_at = DateTimeField(index=True)
        operation = CharField(max_length=16, constraints=[Check(
            "operation IN ('user_add', 'user_delete', 'balance_add', 'balance_sub', 'balance_transfer')")])
        sender_id = BigIntegerField()
        receiver_id = BigIntegerField()
        amount = MoneyField(column_name='sum')
        transaction_description = CharField(max_length=255)

    class Posting(Base):
        id = BigAutoField()
        journal = ForeignKeyField(JournalEntry, index=False)
        account = ForeignKeyField(Account, index=False)
        amount = MoneyField()
        balance_after = MoneyField(null=True)
        created_at = DateTimeField()
        hash = CharField(max_length=64)

        class Meta:
            indexes = ((('account', 'created_at'), False), (('journal',), False))

    class IdempotencyRecord(Base):
        key = CharField(max_length=255, primary_key=True)
        fingerprint = CharField(max_length=64)
        status = IntegerField()
        body = TextField()
        created_at = DateTimeField(index=True)

    return [Account, JournalEntry, Posting, IdempotencyRecord]


def up(migrator, db):
    models = _models(db)
    db.create_tables(models)
    account = models[0]
    # The external counterparty of deposits and withdrawals.
    account.insert(id=0, balance=0, last_hash=GENESIS_HASH,
                   created_at=datetime.datetime(1970, 1, 1)).execute()


def down(migrator, db):
    db.drop_tables(list(reversed(_models(db))))
