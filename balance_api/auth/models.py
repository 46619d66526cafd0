"""Persistence of API keys (the schema: migration 0007)."""
import peewee

from ..storage.models import BaseModel


class ApiKey(BaseModel):
    id = peewee.BigAutoField()
    name = peewee.CharField(max_length=64, unique=True)
    # SHA-256 of the token, hex; the token itself is never stored.
    token_hash = peewee.CharField(max_length=64, unique=True)
    # Comma-separated permit names.
    permits = peewee.TextField()
    uid = peewee.BigIntegerField(null=True)
    created_at = peewee.DateTimeField()
    expires_on = peewee.DateField(null=True)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)
