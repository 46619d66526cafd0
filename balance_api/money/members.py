"""Who the users are, for other domains: loyalty members are the money API's users."""
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
