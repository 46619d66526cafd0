"""The payer points API: grants and corrections per payer, spends, balances."""
from ..auth import permits
from ..clock import utc_now
from ..money.errors import InvalidUserId
from ..money.schemas import parse_user_id
from ..web.commands import AnswersHead, read_body
from ..web.idempotency import Outcome
from ..web.validation import load
from .ledger import Details
from .models import NO_PAYER
from .schemas import AddPointsRequest, SpendPointsRequest, format_moment

_add_request = AddPointsRequest()
_spend_request = SpendPointsRequest()


def member_id(text):
    found = parse_user_id(text)
    if found is None:
        raise InvalidUserId()
    return found


class PayerPointsAdd:
    """POST /points/{uid}/add: points from a payer, or a correction of them when negative."""

    permits = {'POST': permits.POINTS_CREATE}

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_post(self, req, resp, uid):
        member = member_id(uid)
        caller = req.context.caller
        caller.check_user(member)
        data = load(_add_request, read_body(req))

        def add():
            # A retry without a timestamp is the same request: its time is the first's.
            moment = data['timestamp'] or utc_now()
            points = data['points']
            self.ledger.post(member, points, payer=data['payer'], event_at=moment,
                             event_type='issue' if points > 0 else 'revoke',
                             details=Details(key_name=caller.key_name))
            return Outcome(201, {'payer': data['payer'], 'points': points,
                                 'timestamp': format_moment(moment)})

        self.commands.run(req, resp, data, add, {'uid': member})


class PayerPointsSpend:
    """POST /points/{uid}/spend: the oldest points first, across payers."""

    permits = {'POST': permits.POINTS_CREATE}

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_post(self, req, resp, uid):
        member = member_id(uid)
        caller = req.context.caller
        caller.check_user(member)
        data = load(_spend_request, read_body(req))

        def spend():
            drawn = self.ledger.spend(member, data['points'], key_name=caller.key_name)
            return Outcome(200, [{'payer': payer, 'points': points} for payer, points in drawn])

        self.commands.run(req, resp, data, spend, {'uid': member})


class PayerPointsBalance(AnswersHead):
    """GET /points/{uid}/balance: every payer the member has had, zero included."""

    permits = {'GET': permits.POINTS_GET}

    def __init__(self, ledger):
        self.ledger = ledger

    def on_get(self, req, resp, uid):
        member = member_id(uid)
        req.context.caller.check_user(member)
        balances = self.ledger.payer_balances(member)
        resp.media = {payer: points for payer, points in balances.items() if payer != NO_PAYER}
