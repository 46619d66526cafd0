"""The points APIs' routes, added by the application factory."""
from .ledger import PointsLedger
from .resources import PayerPointsAdd, PayerPointsBalance, PayerPointsSpend
from .v3 import ClubTransactions, MemberEvents, MemberWallets

V3 = '/v3/{club}/transactions/points'
# The look-ups' path segment and parameter, by identifier type.
LOOKUPS = {'id': ('by_member_id', 'member_id'), 'msisdn': ('by_msisdn', 'msisdn'),
           'email': ('by_email', 'email')}


def add_routes(app, db, commands):
    """Serve the points APIs on ``app``; ``commands`` runs mutating requests
    once per Idempotency-Key."""
    ledger = PointsLedger(db)
    app.add_route('/points/{uid}/add', PayerPointsAdd(ledger, commands))
    app.add_route('/points/{uid}/spend', PayerPointsSpend(ledger, commands))
    app.add_route('/points/{uid}/balance', PayerPointsBalance(ledger))
    app.add_route(V3, ClubTransactions(ledger, commands))
    for identifier_type, (segment, name) in LOOKUPS.items():
        app.add_route('%s/%s/{%s}' % (V3, segment, name),
                      MemberWallets(ledger, identifier_type, name))
    app.add_route(V3 + '/events/{member_id}', MemberEvents(db))
