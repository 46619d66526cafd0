"""Loyalty points: clubs, members' chains, balances per payer, entries and their lineage.

Entries are append-only. A grant (a positive entry) keeps its unspent
remainder; every negative entry records which grants it drew from and how
much (``points_draw``), so every point spent is traced to the grant and the
payer that funded it. Balances per member, club, wallet and payer are rows
updated in the same transaction as the entries. Each member's entries form
a SHA-256 chain, ``points_member.last_hash`` being its newest link; a change
to a member's points locks that row first.
"""
from peewee import (SQL, BigAutoField, BigIntegerField, CharField, Check, CompositeKey,
                    DateField, DateTimeField, ForeignKeyField, Model, TextField)


def _models(db):
    # A frozen copy of the schema at this point; later changes are new scripts.
    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class PointsClub(Base):
        id = BigAutoField()
        slug = CharField(max_length=64, unique=True)
        policy = CharField(max_length=16, default='fifo', constraints=[
            Check("policy IN ('fifo', 'expiring-first')")])
        created_at = DateTimeField()

    class PointsMember(Base):
        member_id = BigIntegerField(primary_key=True)
        last_hash = CharField(max_length=64)
        created_at = DateTimeField()

    class PointsBalance(Base):
        id = BigAutoField()
        member_id = BigIntegerField()
        club = ForeignKeyField(PointsClub, index=False)
        wallet = CharField(max_length=64)
        # '' when no payer was named.
        payer = CharField(max_length=64)
        balance = BigIntegerField(constraints=[Check('balance >= 0')])

        class Meta:
            indexes = ((('member_id', 'club', 'wallet', 'payer'), True),)

    class PointsEntry(Base):
        id = BigAutoField()
        member_id = BigIntegerField()
        club = ForeignKeyField(PointsClub, index=False)
        wallet = CharField(max_length=64)
        payer = CharField(max_length=64)
        event_type = CharField(max_length=16, constraints=[Check(
            "event_type IN ('purchase', 'campaign', 'issue', 'use', 'revoke', 'expire', "
            "'other')")])
        amount = BigIntegerField(constraints=[Check('amount <> 0')])
        event_at = DateTimeField()
        expires_on = DateField(null=True)
        # A grant's unspent points; NULL on negative entries.
        remaining = BigIntegerField(null=True, constraints=[Check(
            '(amount > 0 AND remaining BETWEEN 0 AND amount) OR '
            '(amount < 0 AND remaining IS NULL)')])
        # The wallet's balance right after this entry.
        balance_after = BigIntegerField()
        transaction_id = CharField(max_length=255, null=True)
        event = CharField(max_length=255, null=True)
        message = CharField(max_length=1024, null=True)
        store_id = CharField(max_length=255, null=True)
        receipt_id = CharField(max_length=255, null=True)
        # JSON texts: the client's additional properties, and what an
        # integration reported about its own balances (kept, never used).
        properties = TextField(null=True)
        reported = TextField(null=True)
        created_at = DateTimeField()
        hash = CharField(max_length=64)

        class Meta:
            indexes = (
                (('member_id', 'id'), False),
            )

    class PointsDraw(Base):
        id = BigAutoField()
        entry = ForeignKeyField(PointsEntry, index=True)
        grant = ForeignKeyField(PointsEntry, index=True)
        points = BigIntegerField(constraints=[Check('points > 0')])

    class PointsTransaction(Base):
        """A client's transaction id, applied once per club."""
        club = ForeignKeyField(PointsClub, index=False)
        transaction_id = CharField(max_length=255)
        created_at = DateTimeField()

        class Meta:
            primary_key = CompositeKey('club', 'transaction_id')

    return [PointsClub, PointsMember, PointsBalance, PointsEntry, PointsDraw, PointsTransaction]


def up(migrator, db):
    models = _models(db)
    db.create_tables(models)
    # The grants a spend may draw on, in the order it draws: only the unspent
    # ones are indexed, so a member's spent history costs a spend nothing.
    db.execute_sql('CREATE INDEX points_entry_unspent ON points_entry '
                   '(member_id, club_id, wallet, event_at, id) WHERE remaining > 0')
    db.execute_sql('CREATE INDEX points_entry_expiring ON points_entry '
                   '(expires_on) WHERE remaining > 0 AND expires_on IS NOT NULL')
    models[0].insert(slug='default', policy='fifo', created_at=SQL('CURRENT_TIMESTAMP')).execute()


def down(migrator, db):
    db.drop_tables(list(reversed(_models(db))))
