"""The points API's errors: codes 601-629.

An unknown member is the money API's 509: members are its users.
"""
import falcon

from ..errors import ApiError


class InvalidPoints(ApiError):
    """Points are a whole number other than zero, of at most 15 digits."""
    code = 601
    message = 'points format is not correct (a whole number other than 0, at most 15 digits)'
    status = falcon.HTTP_422


class InvalidPayer(ApiError):
    """A payer is named by 1 to 64 visible characters."""
    code = 602
    message = 'payer format is not correct (1 to 64 characters)'
    status = falcon.HTTP_422


class InvalidTimestamp(ApiError):
    """Event times are ISO 8601; without an offset they are read as UTC."""
    code = 603
    message = 'timestamp format is not correct (ISO 8601, for example 2022-10-31T10:00:00Z)'
    status = falcon.HTTP_422


class InvalidSpend(ApiError):
    """A spend takes a positive whole number of points."""
    code = 604
    message = 'spend points format is not correct (a positive whole number, at most 15 digits)'
    status = falcon.HTTP_422


class NotEnoughPoints(ApiError):
    """A spend never takes more than the wallet's spendable points."""
    code = 605
    message = 'Not enough points in the wallet'
    status = falcon.HTTP_409


class NotEnoughPayerPoints(ApiError):
    """No payer's points ever go negative: a correction draws only on that payer's unspent points."""
    code = 606
    message = "Not enough of the payer's points for this correction"
    status = falcon.HTTP_409


class UnknownPayer(ApiError):
    """A correction names a payer the member has had points from."""
    code = 607
    message = 'The member never had points from this payer'
    status = falcon.HTTP_409


class PointsBalanceOverflow(ApiError):
    """A balance stays below 10^18 points."""
    code = 608
    message = 'Resulting points balance would exceed the maximum'
    status = falcon.HTTP_422


class InvalidPointsText(ApiError):
    """Wallets, events, messages and ids are text of bounded length."""
    code = 609
    message = 'points text field format is not correct'
    status = falcon.HTTP_422


class DuplicateTransaction(ApiError):
    """A club applies a transaction id once."""
    code = 610
    message = 'Duplicate transaction'
    status = falcon.HTTP_409


class IncorrectAmountSign(ApiError):
    """purchase, campaign and issue add points; use, revoke and expire take them."""
    code = 611
    message = 'Incorrect amount'
    status = falcon.HTTP_422


class InvalidClub(ApiError):
    """A club is named by 1 to 64 lowercase letters, digits, '_' and '-', starting with a letter or digit."""
    code = 612
    message = 'club format is not correct (1 to 64 of a-z, 0-9, "_" and "-", first a-z or 0-9)'
    status = falcon.HTTP_422


class UnknownEventsKey(ApiError):
    """Events take only their documented filters, once each."""
    code = 613
    message = ('Events query is not correct (keys: type, event, message, wallet, amount, '
               'receipt_id, store_id, date-start, date-end, limit, before_id)')
    status = falcon.HTTP_422


class InvalidEventsFilter(ApiError):
    """type is one of the four event kinds, amount a whole number, text filters text."""
    code = 614
    message = 'Events filter format is not correct'
    status = falcon.HTTP_422


class InvalidEventsDate(ApiError):
    """Events dates are UTC days written YYYY-MM-DD."""
    code = 615
    message = 'Events date format is not correct (use YYYY-MM-DD)'
    status = falcon.HTTP_422


class InvalidEventsPaging(ApiError):
    """limit and before_id are positive integers."""
    code = 616
    message = 'Events paging is not correct (limit and before_id are positive integers)'
    status = falcon.HTTP_422
