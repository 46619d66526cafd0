"""Who the users are, for other domains: loyalty members are the money API's users."""
from ..storage.db import is_postgres
from . import pg_sql
from .models import EXTERNAL_ACCOUNT_ID, Account


def find(member_id=None, email=None, msisdn=None):
    """The id of the user (not deleted) with this id, email or msisdn, or None."""
    query = Account.select(Account.id).where(Account.deleted_at.is_null()
                                             & (Account.id != EXTERNAL_ACCOUNT_ID))
    if member_id is not None:
        query = query.where(Account.id == member_id)
    if email is not None:
        query = query.where(Account.email == email)
    if msisdn is not None:
        query = query.where(Account.msisdn == msisdn)
    return query.scalar()


def exists(db, member_id):
    """Whether a user (not deleted) has this id: on PostgreSQL one prepared statement."""
    if member_id == EXTERNAL_ACCOUNT_ID:
        return False
    if is_postgres(db):
        return pg_sql.balance(db, member_id) is not None
    return find(member_id=member_id) is not None
