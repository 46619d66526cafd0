"""The points APIs' routes, added by the application factory."""
from .ledger import PointsLedger
from .resources import PayerPointsAdd, PayerPointsBalance, PayerPointsSpend


def add_routes(app, db, commands):
    """Serve the points APIs on ``app``; ``commands`` runs mutating requests
    once per Idempotency-Key."""
    ledger = PointsLedger(db)
    app.add_route('/points/{uid}/add', PayerPointsAdd(ledger, commands))
    app.add_route('/points/{uid}/spend', PayerPointsSpend(ledger, commands))
    app.add_route('/points/{uid}/balance', PayerPointsBalance(ledger))
