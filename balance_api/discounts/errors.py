"""The discount codes' errors: codes 901-929.

A key's own refusals (no key, a malformed, unknown, revoked or expired one,
a missing permit) keep the keys' codes 701-706 on these routes too; the
legacy routes answer every error, those included, in their clients'
envelope (``balance_api.discounts.resources.legacy_error``).
"""
import falcon

from ..errors import ApiError


class InvalidNumberOfCodes(ApiError):
    """A generation asks for 1 to 1,000,000 codes: a bigger batch is several calls."""
    code = 901
    message = 'number_of_codes format is not correct (a whole number from 1 to 1000000)'
    status = falcon.HTTP_422


class InvalidBrandId(ApiError):
    """A brand id is a positive integer that fits a signed 64-bit integer."""
    code = 902
    message = 'brand_id format is not correct (a positive integer that fits 64 bits)'
    status = falcon.HTTP_422


class InvalidDiscountUserId(ApiError):
    """A user id is a positive integer that fits a signed 64-bit integer."""
    code = 903
    message = 'user_id format is not correct (a positive integer that fits 64 bits)'
    status = falcon.HTTP_422


class UnknownBrand(ApiError):
    """A brand exists from its first generation of codes on."""
    code = 904
    message = 'Brand does not exist (no codes were ever generated for it)'
    status = falcon.HTTP_404


class UnknownDiscountUser(ApiError):
    """Codes go to the money API's users only (not deleted)."""
    code, message, status = 905, 'User does not exist', falcon.HTTP_404


class OutOfCodes(ApiError):
    """Every code of the brand is claimed: none is ever handed out twice."""
    code = 906
    message = 'The brand has no unclaimed discount codes left'
    status = falcon.HTTP_409


class SecretOfAnotherUser(ApiError):
    """The legacy route's user_secret is a key bound to that very user: a key
    bound to another user, or to none, is not that user's secret."""
    code = 907
    message = 'user_secret is not a key of this user'
    status = falcon.HTTP_403


class UserRequired(ApiError):
    """A code is claimed for a user: a key bound to none has to name one (user_id)."""
    code = 908
    message = 'user_id is required: the API key is bound to no user'
    status = falcon.HTTP_403


class CodesExhausted(ApiError):
    """Codes are drawn at random until they are new to the brand; when draw
    after draw finds only codes the brand has, its space is spent."""
    code = 909
    message = 'Could not draw enough new codes for the brand'
    status = falcon.HTTP_500
