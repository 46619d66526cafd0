"""The permits: one per action, named as the existing clients name them.

A resource states what each of its methods needs in ``permits`` (HEAD
needs what GET needs); a resource anyone may call says ``public = True``.
A resource that states neither is refused to every key but admin ones, so
a new route is closed until it says otherwise.
"""
ADMIN = 'admin'

USER_CREATE = 'Balance:Api:User:Create'
USER_DELETE = 'Balance:Api:User:Delete'
BALANCE_GET = 'Balance:Api:Balance:Get'
BALANCE_LIST = 'Balance:Api:Balance:List'
BALANCE_UPDATE = 'Balance:Api:Balance:Update'
TRANSFER_CREATE = 'Balance:Api:Transfer:Create'
HISTORY_LIST = 'Balance:Api:History:List'
POINTS_CREATE = 'Transaction:Api:Points:Create'
POINTS_GET = 'Transaction:Api:Points:Get'
POINTS_LIST = 'Transaction:Api:Points:List'
EXPORT_GET = 'Balance:Api:Export:Get'
METRICS_GET = 'Balance:Api:Metrics:Get'
DISCOUNT_CODES_GENERATE = 'Discount:Api:Codes:Generate'
DISCOUNT_CODES_GET = 'Discount:Api:Codes:Get'

ALL = (USER_CREATE, USER_DELETE, BALANCE_GET, BALANCE_LIST, BALANCE_UPDATE, TRANSFER_CREATE,
       HISTORY_LIST, POINTS_CREATE, POINTS_GET, POINTS_LIST, EXPORT_GET, METRICS_GET,
       DISCOUNT_CODES_GENERATE, DISCOUNT_CODES_GET, ADMIN)


def is_public(resource):
    # No resource: a route that does not exist, or a static file.
    return resource is None or getattr(resource, 'public', False)


def required(resource, method):
    """The permit ``method`` on ``resource`` needs (``admin`` when it states none)."""
    permits = getattr(resource, 'permits', {})
    if method == 'HEAD':
        method = 'GET'
    return permits.get(method, ADMIN)


def parse(text):
    """``P1,P2`` -> a tuple of known permits; raises ValueError naming an unknown one."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(',') if name.strip()))
    unknown = [name for name in names if name not in ALL]
    if unknown:
        raise ValueError('unknown permit(s): %s (known: %s)' % (', '.join(unknown), ', '.join(ALL)))
    if not names:
        raise ValueError('at least one permit is needed')
    return names
