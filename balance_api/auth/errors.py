"""The keys' errors: codes 701-729."""
import falcon

from ..errors import ApiError

_CHALLENGE = {'WWW-Authenticate': 'Bearer'}


class MissingCredentials(ApiError):
    """Every endpoint but health, readiness and the API documents needs a key."""
    code = 701
    message = 'An API key is required (Authorization: Bearer <token> or X-Client-Authorization)'
    status = falcon.HTTP_401
    headers = _CHALLENGE


class MalformedCredentials(ApiError):
    """A key is sent as ``Authorization: Bearer <token>`` or ``X-Client-Authorization: <token>``, once."""
    code = 702
    message = 'Authorization header format is not correct'
    status = falcon.HTTP_401
    headers = _CHALLENGE


class UnknownKey(ApiError):
    """A token that no key has."""
    code = 703
    message = 'API key is not valid'
    status = falcon.HTTP_401
    headers = _CHALLENGE


class RevokedKey(ApiError):
    """A revoked key opens nothing."""
    code = 704
    message = 'API key has been revoked'
    status = falcon.HTTP_401
    headers = _CHALLENGE


class ExpiredKey(ApiError):
    """A key expires at the end of its expiry day (UTC)."""
    code = 705
    message = 'API key has expired'
    status = falcon.HTTP_401
    headers = _CHALLENGE


class MissingPermit(ApiError):
    """Each operation needs its permit (or admin)."""
    code = 706
    message = 'API key lacks the permit this operation needs'
    status = falcon.HTTP_403


class OtherUsersData(ApiError):
    """A key bound to a user acts for that user alone."""
    code = 707
    message = 'API key may act only for the user it is bound to'
    status = falcon.HTTP_403
