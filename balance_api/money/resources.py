"""The money API's resources: users, balances, transfers and history.

Each states the permit its methods need (``balance_api.auth.permits``);
the request's key (``req.context.caller``) is checked against the user a
request is about before anything is read or run, replays included.
"""
from ..auth import permits
from ..web.commands import AnswersHead, read_body
from ..web.idempotency import Outcome
from ..web.raw_path import path_field_as_sent
from ..web.streaming import respond
from ..web.validation import load
from . import errors, history
from .schemas import (BalanceChangeRequest, CreateUserRequest, TransferRequest,
                      UpdateContactRequest, balance_body, parse_user_id)


def path_user_id(text):
    user_id = parse_user_id(text)
    if user_id is None:
        raise errors.InvalidUserId()
    return user_id


_change_request = BalanceChangeRequest()
_create_request = CreateUserRequest()
_contact_request = UpdateContactRequest()
_transfer_request = TransferRequest()


class BalanceCollection(AnswersHead):
    """GET /balance: every user's balance, ordered by user id."""

    permits = {'GET': permits.BALANCE_LIST}
    # The stream opens its own connection.
    uses_database = False

    def __init__(self, ledger):
        self.ledger = ledger

    def on_get(self, req, resp):
        # A key bound to a user lists that user alone.
        only = req.context.caller.uid
        respond(resp, self.ledger.db,
                lambda at_most: self.ledger.balances(only).limit(at_most).sql())


class BalanceItem(AnswersHead):
    """GET /balance/{user_id}: one balance. PUT: add or sub money."""

    permits = {'GET': permits.BALANCE_GET, 'PUT': permits.BALANCE_UPDATE}

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_get(self, req, resp, user_id):
        user_id = path_user_id(user_id)
        req.context.caller.check_user(user_id)
        resp.media = balance_body(self.ledger.balance(user_id))

    def on_put(self, req, resp, user_id):
        user_id = path_user_id(user_id)
        caller = req.context.caller
        caller.check_user(user_id)
        data = load(_change_request, read_body(req))

        def change():
            balance = self.ledger.change_balance(
                user_id, data['operation'], data['balance'], data['trans_desc'],
                key_name=caller.key_name)
            return Outcome(200, balance_body(balance))

        self.commands.run(req, resp, data, change, path_params={'user_id': user_id})


class UserCollection:
    """POST /user: create a user (an existing one with the same details is returned
    unchanged, 200), or with ``restore=true`` re-open a deleted one."""

    permits = {'POST': permits.USER_CREATE}

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_post(self, req, resp):
        data = load(_create_request, read_body(req))
        caller = req.context.caller
        caller.check_user(data['uid'])

        def create():
            balance, created = self.ledger.create_user(data['uid'], data['email'], data['msisdn'],
                                                       key_name=caller.key_name,
                                                       restore=data.get('restore', False))
            return Outcome(201 if created else 200, balance_body(balance))

        self.commands.run(req, resp, data, create)


class UserItem:
    """PUT /user/{user_id}: change a user's email and msisdn."""

    # Contacts are set when a user is created; changing them is the same right.
    permits = {'PUT': permits.USER_CREATE}

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_put(self, req, resp, user_id):
        user_id = path_user_id(user_id)
        req.context.caller.check_user(user_id)
        data = load(_contact_request, read_body(req))

        def update():
            contact = self.ledger.set_contact(user_id, **data)
            return Outcome(200, contact._asdict())

        self.commands.run(req, resp, data, update, path_params={'user_id': user_id})


class UserDelete:
    """DELETE /balance_delete_user/{user_id}: delete a user whose balance is zero."""

    permits = {'DELETE': permits.USER_DELETE}

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_delete(self, req, resp, user_id):
        user_id = path_user_id(user_id)
        caller = req.context.caller
        caller.check_user(user_id)

        def delete():
            self.ledger.delete_user(user_id, key_name=caller.key_name)
            return Outcome(200, {'code': 0, 'message': 'User deleted'})

        self.commands.run(req, resp, {}, delete, path_params={'user_id': user_id})


class Transfer:
    """PUT /transfer: move money from one user to another."""

    permits = {'PUT': permits.TRANSFER_CREATE}

    def __init__(self, ledger, commands):
        self.ledger = ledger
        self.commands = commands

    def on_put(self, req, resp):
        data = load(_transfer_request, read_body(req))
        caller = req.context.caller
        # A key bound to a user sends that user's money only.
        caller.check_user(data['sender_id'])

        def transfer():
            balances = self.ledger.transfer(
                data['sender_id'], data['receiver_id'], data['balance'], data['trans_desc'],
                key_name=caller.key_name)
            return Outcome(200, [balance_body(b) for b in balances])

        self.commands.run(req, resp, data, transfer)


class History(AnswersHead):
    """Both the path form (/history/uid=12&date-start=...) and the query-string form,
    with the same meaning: each is decoded once, by ``history.parse_query``."""

    permits = {'GET': permits.HISTORY_LIST}
    # Validation needs no database; the stream opens its own connection.
    uses_database = False

    def __init__(self, db):
        self.db = db

    def on_get(self, req, resp, query=None):
        if query is not None:
            query = path_field_as_sent(req, 'query', query)
        filters = history.parse_query(query, req.query_string)
        caller = req.context.caller
        if caller.uid is not None:
            # A key bound to a user reads that user's rows, whichever form is used.
            if filters.uid is None:
                filters = filters._replace(uid=caller.uid)
            caller.check_user(filters.uid)
        respond(resp, self.db, history.statement(filters, self.db))
