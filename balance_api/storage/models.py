"""The base of every domain's peewee models: bound late to the one database."""
import peewee

from .db import database


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
