"""Persistence of points, as peewee models (the schema: migration 0005)."""
import peewee

from ..storage.models import BaseModel

DEFAULT_CLUB = 'default'
DEFAULT_WALLET = 'default'
# A grant no payer was named for.
NO_PAYER = ''


class PointsClub(BaseModel):
    """A loyalty club, created on first use; its policy orders spending."""

    id = peewee.BigAutoField()
    slug = peewee.CharField(max_length=64, unique=True)
    policy = peewee.CharField(max_length=16, default='fifo')
    created_at = peewee.DateTimeField()


class PointsMember(BaseModel):
    """A member's points chain; a change to the member's points locks this row."""

    member_id = peewee.BigIntegerField(primary_key=True)
    last_hash = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField()


class PointsBalance(BaseModel):
    """Points held per member, club, wallet and payer (expired grants included
    until their expiry is written)."""

    id = peewee.BigAutoField()
    member_id = peewee.BigIntegerField()
    club = peewee.ForeignKeyField(PointsClub, index=False)
    wallet = peewee.CharField(max_length=64)
    payer = peewee.CharField(max_length=64)
    balance = peewee.BigIntegerField()


class PointsEntry(BaseModel):
    """One movement of points; a grant (positive) keeps its unspent remainder."""

    id = peewee.BigAutoField()
    member_id = peewee.BigIntegerField()
    club = peewee.ForeignKeyField(PointsClub, index=False)
    wallet = peewee.CharField(max_length=64)
    payer = peewee.CharField(max_length=64)
    event_type = peewee.CharField(max_length=16)
    amount = peewee.BigIntegerField()
    event_at = peewee.DateTimeField()
    expires_on = peewee.DateField(null=True)
    remaining = peewee.BigIntegerField(null=True)
    balance_after = peewee.BigIntegerField()
    transaction_id = peewee.CharField(max_length=255, null=True)
    event = peewee.CharField(max_length=255, null=True)
    message = peewee.CharField(max_length=1024, null=True)
    store_id = peewee.CharField(max_length=255, null=True)
    receipt_id = peewee.CharField(max_length=255, null=True)
    properties = peewee.TextField(null=True)
    reported = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()
    hash = peewee.CharField(max_length=64)
    # The API key that made the change (None before keys, with auth off, or a sweep).
    key_name = peewee.CharField(max_length=64, null=True)


class PointsDraw(BaseModel):
    """How many points a negative entry took from one grant."""

    id = peewee.BigAutoField()
    entry = peewee.ForeignKeyField(PointsEntry, backref='draws')
    grant = peewee.ForeignKeyField(PointsEntry, backref='drawn_by')
    points = peewee.BigIntegerField()


class PointsTransaction(BaseModel):
    """A client's transaction id, applied once per club."""

    club = peewee.ForeignKeyField(PointsClub, index=False)
    transaction_id = peewee.CharField(max_length=255)
    created_at = peewee.DateTimeField()

    class Meta:
        primary_key = peewee.CompositeKey('club', 'transaction_id')
