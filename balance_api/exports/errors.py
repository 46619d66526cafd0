"""The exports' errors: codes 801-829."""
import falcon

from ..errors import ApiError


class UnknownExportKey(ApiError):
    """An export query names only its own keys, each once (only the filters
    ``operation`` and ``event_type`` may repeat); a typo must not widen an export."""
    code = 801
    message = 'Export query is not correct (an unknown key, or a key given twice)'
    status = falcon.HTTP_422


class InvalidExportDate(ApiError):
    """An export covers whole UTC days: date-start and date-end are both required."""
    code = 802
    message = 'Export date format is not correct (date-start and date-end are required, YYYY-MM-DD)'
    status = falcon.HTTP_422


class InvalidExportRange(ApiError):
    """The first day of an export comes no later than its last."""
    code, message, status = 803, 'Export date-start is after date-end', falcon.HTTP_422


class InvalidExportUid(ApiError):
    """A uid is a positive integer that fits a signed 64-bit integer."""
    code = 804
    message = 'Export uid format is not correct (a positive integer that fits 64 bits)'
    status = falcon.HTTP_422


class InvalidExportOperation(ApiError):
    """The journal export filters by the five operations history knows."""
    code = 805
    message = ('Export operation is not correct (user_add, user_delete, balance_add, '
               'balance_sub or balance_transfer)')
    status = falcon.HTTP_422


class InvalidExportFormat(ApiError):
    """Exports are written as CSV or as JSON Lines."""
    code, message, status = 806, 'Export format is not correct (csv or jsonl)', falcon.HTTP_422


class InvalidExportEventType(ApiError):
    """The points export filters by the event types the points ledger stores."""
    code = 807
    message = ('Export event_type is not correct (purchase, campaign, issue, use, revoke, '
               'expire or other)')
    status = falcon.HTTP_422


class SigningKeyNotConfigured(ApiError):
    """A manifest is only worth its signature: without a key none is made
    (the CSV export itself is still served)."""
    code = 810
    message = 'Signing key is not configured (SIGNING_KEY_FILE)'
    status = falcon.HTTP_503


class PublicKeyNotConfigured(ApiError):
    """There is no public key to publish while no signing key is configured."""
    code = 811
    message = 'No public key: the signing key is not configured'
    status = falcon.HTTP_404
