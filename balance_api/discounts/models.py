"""Persistence of discount codes, as peewee models (the schema: migration 0010)."""
import peewee

from ..storage.models import BaseModel

GENERATE = 'generate'
CLAIM = 'claim'
ACTIONS = (GENERATE, CLAIM)


class DiscountBrand(BaseModel):
    """A brand, created by its first generation; ``id`` is the client's brand_id."""

    id = peewee.BigIntegerField(primary_key=True)
    created_at = peewee.DateTimeField()


class DiscountAudit(BaseModel):
    """One generation (``codes`` new codes) or one claim (``code`` went to ``user_id``)."""

    id = peewee.BigAutoField()
    created_at = peewee.DateTimeField()
    action = peewee.CharField(max_length=16)
    brand = peewee.ForeignKeyField(DiscountBrand, column_name='brand_id', index=False,
                                    backref='+')
    codes = peewee.BigIntegerField()
    code = peewee.CharField(max_length=8, null=True)
    user_id = peewee.BigIntegerField(null=True)
    # The API key that made the change (None with auth off).
    key_name = peewee.CharField(max_length=64, null=True)


class DiscountCode(BaseModel):
    """A code of a brand; once claimed it names its user and its claim's audit row."""

    id = peewee.BigAutoField()
    brand = peewee.ForeignKeyField(DiscountBrand, column_name='brand_id', index=False,
                                    backref='+')
    code = peewee.CharField(max_length=8)
    generation = peewee.ForeignKeyField(DiscountAudit, column_name='generation_id', index=False,
                                         backref='+')
    user_id = peewee.BigIntegerField(null=True)
    claim = peewee.ForeignKeyField(DiscountAudit, column_name='claim_id', null=True, index=False,
                                    backref='+')
    claimed_at = peewee.DateTimeField(null=True)
