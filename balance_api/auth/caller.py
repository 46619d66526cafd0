"""Who is calling: the key a request came with, and what it may do."""
from typing import NamedTuple, Optional, Tuple

from ..web import metrics
from . import errors, permits


class Caller(NamedTuple):
    """A verified key (or, with auth off, anyone)."""
    key_name: Optional[str]
    permits: Tuple[str, ...]
    uid: Optional[int] = None

    @classmethod
    def anyone(cls):
        """Auth is off: every permit, no user bound, no name."""
        return cls(None, (permits.ADMIN,))

    @property
    def idempotency_owner(self):
        """Whose Idempotency-Keys these are ('' with auth off)."""
        return self.key_name or ''

    def may(self, permit):
        return permits.ADMIN in self.permits or permit in self.permits

    def check_user(self, user_id):
        """Raise unless this key may act for ``user_id``."""
        if self.uid is not None and user_id != self.uid:
            _refuse_other_users_data()

    def check_users(self, user_ids):
        for user_id in user_ids:
            self.check_user(user_id)

    def require_unbound(self):
        """Raise for a key bound to a user: the operation is about all users."""
        if self.uid is not None:
            _refuse_other_users_data()


def _refuse_other_users_data():
    metrics.auth_refused('other_users_data')
    raise errors.OtherUsersData()
