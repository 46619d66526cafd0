"""The money API's errors: 501-517 and 525-528, the codes and messages of
the offer_balance service this one replaces (clients match on them), and
542-544, added after it (506 and 510 stay free: offer_balance reserved them).

The codes every domain shares (bodies, routing, idempotency keys, the
database) are in ``balance_api.errors``.
"""
import falcon

from ..errors import ApiError

class UserCreateFailed(ApiError):
    """The database refused a new user for a reason other than bad input."""
    code, message, status = 501, 'Failed to add new user', falcon.HTTP_500
class UserDeleteFailed(ApiError):
    """The database failed while deleting a user."""
    code, message, status = 502, 'Delete user failed', falcon.HTTP_500
class BalanceChangeFailed(ApiError):
    """The database failed while moving money (add, sub or transfer)."""
    code, message, status = 503, 'Failed to add/sub balance to user', falcon.HTTP_500
class OperationMismatch(ApiError):
    """``operation`` is neither ``add`` nor ``sub``."""
    code = 504
    message = 'Operation type mismatch. Failed to add/sub balance to user'
    status = falcon.HTTP_422
class InsufficientFunds(ApiError):
    """A balance may never go below zero."""
    code, message, status = 505, 'User has not enough money', falcon.HTTP_409
class InvalidUserId(ApiError):
    """A user id is a positive integer that fits a signed 64-bit column."""
    code, message, status = 507, 'User ID format is not correct', falcon.HTTP_422
class InvalidAmount(ApiError):
    """An amount is positive, with at most 17 integer digits and 2 decimals."""
    code = 508
    message = 'balance format is not correct (use decimal 19.2). (1.04 for example)'
    status = falcon.HTTP_422
class UserNotFound(ApiError):
    """The user never existed or was deleted."""
    code, message, status = 509, 'User does not exist', falcon.HTTP_404
class NonZeroBalance(ApiError):
    """Only a user whose balance is zero can be deleted: money never vanishes."""
    code = 511
    message = 'Delete user failed - non zero balance'
    status = falcon.HTTP_409
class JournalWriteFailed(ApiError):
    """The audit journal could not be written, so the change was rolled back."""
    code, message, status = 512, 'Failed saving balance history', falcon.HTTP_500
class SameSenderReceiver(ApiError):
    """A transfer needs two different users."""
    code = 513
    message = 'Sender and receiver must be different users'
    status = falcon.HTTP_422
class InvalidHistoryDate(ApiError):
    """History dates are UTC days written YYYY-MM-DD."""
    code = 514
    message = 'History date format is not correct (use YYYY-MM-DD)'
    status = falcon.HTTP_422
class UnknownHistoryKey(ApiError):
    """History takes only uid, date-start, date-end, limit and after_id, once each."""
    code = 515
    message = 'History query is not correct (keys: uid, date-start, date-end, limit, after_id)'
    status = falcon.HTTP_422
class InvalidHistoryRange(ApiError):
    """date-start may not come after date-end."""
    code, message, status = 516, 'History date-start is after date-end', falcon.HTTP_422
class InvalidPaging(ApiError):
    """limit and after_id are positive integers (after_id may be 0)."""
    code = 517
    message = 'History paging is not correct (limit and after_id are positive integers)'
    status = falcon.HTTP_422
class BalanceOverflow(ApiError):
    """A balance never exceeds what DECIMAL(19,2) can hold."""
    code = 525
    message = 'Resulting balance would exceed the maximum (decimal 19.2)'
    status = falcon.HTTP_422
class InvalidDescription(ApiError):
    """trans_desc is text of at most 255 characters."""
    code = 526
    message = 'trans_desc format is not correct (text of at most 255 characters)'
    status = falcon.HTTP_422
class InvalidContact(ApiError):
    """email must look like an address; msisdn is 6 to 15 digits, optionally after '+'."""
    code = 527
    message = 'email or msisdn format is not correct'
    status = falcon.HTTP_422
class ContactTaken(ApiError):
    """email and msisdn are unique among users."""
    code = 528
    message = 'email or msisdn already belongs to another user'
    status = falcon.HTTP_409
class UserDetailsDiffer(ApiError):
    """Creating a user that exists is a no-op only with the same details: an email
    or msisdn other than its own is another person, or a change (PUT /user/{id})."""
    code, message, status = 542, 'User exists with different details', falcon.HTTP_409
class UserWasDeleted(ApiError):
    """A deleted user's id stays that person's: a new user under it would merge two
    people's histories, so only an explicit restore (restore=true) re-opens it."""
    code = 543
    message = 'User was deleted (restore=true re-opens the same account)'
    status = falcon.HTTP_409
class InvalidRestore(ApiError):
    """restore is true or false."""
    code, message, status = 544, 'restore format is not correct (true or false)', falcon.HTTP_422
