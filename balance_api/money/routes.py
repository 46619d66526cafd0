"""The money API's routes, added by the application factory."""
from .ledger import Ledger
from .resources import (BalanceCollection, BalanceItem, History, Transfer, UserCollection,
                        UserDelete, UserItem)


def add_routes(app, db, commands, on_user_deleted=None):
    """Serve the money API on ``app``: ``commands`` runs its mutating
    requests once per Idempotency-Key; ``on_user_deleted(user_id)`` runs in
    each deletion's transaction."""
    ledger = Ledger(db, on_user_deleted=on_user_deleted)
    app.add_route('/balance', BalanceCollection(ledger))
    app.add_route('/balance/{user_id}', BalanceItem(ledger, commands))
    app.add_route('/user', UserCollection(ledger, commands))
    app.add_route('/user/{user_id}', UserItem(ledger, commands))
    app.add_route('/balance_delete_user/{user_id}', UserDelete(ledger, commands))
    app.add_route('/transfer', Transfer(ledger, commands))
    history = History(db)
    app.add_route('/history', history)
    app.add_route('/history/{query}', history)
