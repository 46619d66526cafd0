"""Random sequences of operations through the API, checked against a plain Python model.

A hypothesis state machine creates, deletes, credits, debits and transfers
between a handful of user ids (so collisions, deletion, refused re-creation
and restores happen), with valid and invalid ids, amounts, descriptions and contacts, in
both body encodings, sometimes under an Idempotency-Key that it later
replays or reuses. After every step the answer (status, error code, body)
and every balance must equal the model's; at checkpoints and at the end of
every example the history has one row per change and the ledger verifies.
"""
import contextlib
import json
import re
from decimal import Decimal
from typing import Any, NamedTuple, Optional
from urllib.parse import urlencode

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule, run_state_machine_as_test)

from balance_api import create_app, errors
from balance_api.config import Settings
from balance_api.storage.db import is_postgres, open_database
from balance_api.money.verify import verify_ledger
from helpers import admin_client

SETTINGS = settings(max_examples=40, stateful_step_count=30, deadline=None, derandomize=True,
                    database=None, suppress_health_check=[HealthCheck.too_slow])

MAX_USER_ID = 2 ** 63 - 1
MAX_BALANCE = Decimal('99999999999999999.99')
CENT = Decimal('0.01')
MESSAGES = {error.code: error.message for error in errors.all_errors()}
FORM = {'Content-Type': 'application/x-www-form-urlencoded'}
JSON = {'Content-Type': 'application/json'}

# Outcomes decided by the ledger, after validation: these are recorded under an
# Idempotency-Key and replayed on a retry.
LEDGER_CODES = {505, 509, 511, 513, 525, 528, 542, 543}

MISSING = object()


class Raw(NamedTuple):
    """A JSON value written as literal text (a number exactly as a client would send it)."""
    text: str


SAME = object()


class Value(NamedTuple):
    """One input field: how a form and a JSON body carry it, and what it means (None: invalid)."""
    form: Any
    json: Any
    value: Any
    json_value: Any = SAME  # when it means something else in JSON

    def meaning(self, json_body):
        return self.json_value if json_body and self.json_value is not SAME else self.value


def _json_body(fields):
    parts = []
    for name, value in fields.items():
        if value is MISSING:
            continue
        text = value.text if isinstance(value, Raw) else json.dumps(value)
        parts.append('%s:%s' % (json.dumps(name), text))
    return '{%s}' % ','.join(parts)


def _form_body(fields):
    return urlencode([(name, value) for name, value in fields.items() if value is not MISSING])


def money(amount):
    return format(amount.quantize(CENT), 'f')


# -- strategies --------------------------------------------------------------

def mostly(valid, invalid, one_in=8):
    """``valid``, except about one time in ``one_in``: ``invalid``."""
    return st.integers(1, one_in).flatmap(lambda n: invalid if n == one_in else valid)


POOL = [1, 2, 3, MAX_USER_ID]


def id_values(uids):
    """A user id: in a form its text, in JSON a number or (invalid there) its text."""
    return st.sampled_from(uids).flatmap(lambda uid: st.sampled_from([
        Value(str(uid), uid, uid), Value(str(uid), str(uid), uid, None)]))


invalid_ids = st.sampled_from([
    Value('0', 0, None), Value('-1', -1, None), Value('abc', 'abc', None),
    Value('01', '01', None), Value(str(2 ** 63), 2 ** 63, None), Value('1.5', Raw('1.5'), None),
    Value('+1', True, None), Value('', None, None), Value(MISSING, MISSING, None),
    Value('1 ', '1 ', None), Value('١', '١', None),
])
invalid_path_ids = st.sampled_from(['0', '-1', 'abc', '01', str(2 ** 63), '1.5', '+1', '1e3'])


def ids(live):
    """Mostly a live user's id (when there is one), else any id of the pool, or an invalid one."""
    known = id_values(sorted(live)) if live else id_values(POOL)
    return mostly(mostly(known, id_values(POOL), one_in=4), invalid_ids)


def path_ids(live):
    return ids(live).map(lambda uid: str(uid.value) if uid.value else None).flatmap(
        lambda text: st.just(text) if text else invalid_path_ids)


@st.composite
def valid_amounts(draw):
    cents = draw(mostly(
        st.integers(1, 3000),
        st.one_of(st.integers(1, 10 ** 19 - 1),
                  st.sampled_from([10 ** 19 - 1, 10 ** 19 - 2, 5 * 10 ** 18])),
        one_in=10))
    amount = Decimal(cents) / 100
    canonical = money(amount)
    shortest = canonical.rstrip('0').rstrip('.') if cents % 10 == 0 else canonical
    text = draw(st.sampled_from([canonical, shortest]))
    json_value = draw(st.sampled_from(
        [text] + [Raw(t) for t in (canonical, shortest)]))
    return Value(text, json_value, amount.quantize(CENT))


amounts = mostly(valid_amounts(), st.sampled_from([
    Value('0', Raw('0'), None), Value('0.00', Raw('0.00'), None), Value('-1', Raw('-1'), None),
    Value('-0.01', '-0.01', None), Value('1.001', Raw('1.001'), None),
    Value('1e3', '1e3', None), Value('1E3', Raw('1E3'), None), Value('1.000', Raw('1.000'), None),
    Value('9e999999999', Raw('9e999999999'), None),
    Value('', '', None), Value('abc', 'abc', None),
    Value(' 1', ' 1', None), Value('1.', '1.', None), Value('.5', '.5', None),
    Value('100000000000000000', Raw('100000000000000000'), None),
    Value('000000000000000001', '000000000000000001', None),
    Value('05.00', '05.00', None), Value('00.50', '00.50', None), Value('007', '007', None),
    Value('1,5', '1,5', None), Value('NaN', 'NaN', None), Value('Infinity', 'Infinity', None),
    Value('٣', '٣', None), Value('+1', '+1', None), Value(MISSING, MISSING, None),
    Value('true', True, None), Value('null', None, None),
]), one_in=6)
operations = mostly(
    st.sampled_from([Value('add', 'add', 'add'), Value('sub', 'sub', 'sub')]),
    st.sampled_from([Value('mul', 'mul', None), Value('ADD', 'ADD', None), Value('', '', None),
                     Value(MISSING, MISSING, None), Value('1', Raw('1'), None)]))
# value: True for valid, None for invalid.
descriptions = mostly(
    st.sampled_from([Value(MISSING, MISSING, True), Value('', '', True),
                     Value('fee', 'fee', True), Value('é' * 255, 'é' * 255, True),
                     Value('null', None, True)]),
    st.sampled_from([Value('x' * 256, 'x' * 256, None), Value('5', Raw('5'), True, None)]))
emails = mostly(
    st.sampled_from([Value(MISSING, MISSING, ''), Value('', '', ''),
                     Value('ann@example.com', 'ann@example.com', 'ann@example.com'),
                     Value('bob@example.com', 'bob@example.com', 'bob@example.com')]),
    st.just(Value('not-an-email', 'not-an-email', None)))
msisdns = mostly(
    st.sampled_from([Value(MISSING, MISSING, ''), Value('', '', ''),
                     Value('+3725551234', '+3725551234', '+3725551234'),
                     Value('5551234', '5551234', '5551234')]),
    st.sampled_from([Value('12ab', '12ab', None), Value('5551234x', '5551234x', None),
                     Value('+', '+', None)]))
# value: True or False, None for invalid.
restores = mostly(
    st.sampled_from([Value(MISSING, MISSING, False), Value('false', False, False),
                     Value('true', True, True)]),
    st.sampled_from([Value('yes', 'true', None), Value('1', 1, None), Value('True', None, None)]))
extras = mostly(st.just(False), st.just(True), one_in=12)
use_key = st.sampled_from([False, False, True])
as_json = st.booleans()


def _path_uid(text):
    return int(text) if re.fullmatch(r'[1-9][0-9]*', text) and int(text) <= MAX_USER_ID else None


# -- the model ------------------------------------------------------------------

class Expected(NamedTuple):
    status: int
    body: Any
    journal_rows: int = 0
    recorded: bool = False


def refused(code, status):
    return Expected(status, {'code': code, 'message': MESSAGES[code]},
                    recorded=code in LEDGER_CODES)


def _request_fields_error(checks, extra):
    """The first bad field decides; an unknown field comes after every known one."""
    for ok, code in checks:
        if not ok:
            return refused(code, 422)
    if extra:
        return refused(524, 422)
    return None


class Model:
    def __init__(self):
        self.balances = {}   # uid -> Decimal, live users only
        self.contacts = {}   # uid -> (email, msisdn), live users only
        self.deleted = set()  # uids deleted and not restored since
        self.journal_rows = 0

    def create(self, uid, email, msisdn, extra, restore=False):
        error = _request_fields_error(
            [(uid is not None, 507), (email is not None, 527), (msisdn is not None, 527),
             (restore is not None, 544)], extra)
        if error:
            return error, None
        user_id = uid
        if user_id in self.balances:
            # A contact left out (or empty) is not compared.
            own_email, own_msisdn = self.contacts[user_id]
            if (email and email != own_email) or (msisdn and msisdn != own_msisdn):
                return refused(542, 409), None
            return Expected(200, self._balance(user_id), recorded=True), None
        if user_id in self.deleted and not restore:
            return refused(543, 409), None
        if restore and user_id not in self.deleted:
            return refused(509, 404), None
        taken = {value for contact in self.contacts.values() for value in contact if value}
        if (email and email in taken) or (msisdn and msisdn in taken):
            return refused(528, 409), None

        def apply():
            self.balances[user_id] = Decimal('0.00')
            self.contacts[user_id] = (email, msisdn)
            self.deleted.discard(user_id)
        return Expected(201, {'user_id': user_id, 'balance': '0.00'}, 1, True), apply

    def delete(self, path_id):
        user_id = _path_uid(path_id)
        if user_id is None:
            return refused(507, 422), None
        if user_id not in self.balances:
            return refused(509, 404), None
        if self.balances[user_id] != 0:
            return refused(511, 409), None

        def apply():
            del self.balances[user_id]
            del self.contacts[user_id]
            self.deleted.add(user_id)
        return Expected(200, {'code': 0, 'message': 'User deleted'}, 1, True), apply

    def read(self, path_id):
        user_id = _path_uid(path_id)
        if user_id is None:
            return refused(507, 422)
        if user_id not in self.balances:
            return refused(509, 404)
        return Expected(200, self._balance(user_id))

    def change(self, path_id, operation, amount, description, extra):
        user_id = _path_uid(path_id)
        if user_id is None:
            return refused(507, 422), None
        error = _request_fields_error(
            [(operation is not None, 504), (amount is not None, 508),
             (description is not None, 526)], extra)
        if error:
            return error, None
        if user_id not in self.balances:
            return refused(509, 404), None
        delta = amount if operation == 'add' else -amount
        after = self.balances[user_id] + delta
        if after < 0:
            return refused(505, 409), None
        if after > MAX_BALANCE:
            return refused(525, 422), None

        def apply():
            self.balances[user_id] = after
        return Expected(200, {'user_id': user_id, 'balance': money(after)}, 1, True), apply

    def transfer(self, sender, receiver, amount, description, extra):
        error = _request_fields_error(
            [(sender is not None, 507), (receiver is not None, 507),
             (amount is not None, 508), (description is not None, 526)], extra)
        if error:
            return error, None
        if sender == receiver:
            return refused(513, 422), None
        for user_id in (sender, receiver):
            if user_id not in self.balances:
                return refused(509, 404), None
        sender_after = self.balances[sender] - amount
        receiver_after = self.balances[receiver] + amount
        if sender_after < 0:
            return refused(505, 409), None
        if receiver_after > MAX_BALANCE:
            return refused(525, 422), None

        def apply():
            self.balances[sender] = sender_after
            self.balances[receiver] = receiver_after
        body = sorted([{'user_id': sender, 'balance': money(sender_after)},
                       {'user_id': receiver, 'balance': money(receiver_after)}],
                      key=lambda row: row['user_id'])
        return Expected(200, body, 1, True), apply

    def _balance(self, user_id):
        return {'user_id': user_id, 'balance': money(self.balances[user_id])}

    def all_balances(self):
        return [self._balance(user_id) for user_id in sorted(self.balances)]


# -- the state machine ------------------------------------------------------------

class Sent(NamedTuple):
    method: str
    path: str
    body: Optional[str]
    headers: dict
    status: int
    answer: Any


def _reset(db):
    """Empty the ledger: every example starts from a fresh database."""
    with db.connection_context():
        if is_postgres(db):
            db.execute_sql('TRUNCATE posting, journal_entry, idempotency_record RESTART IDENTITY')
            db.execute_sql('DELETE FROM account WHERE id <> 0')
        else:
            with db.atomic():
                for table in ('posting', 'journal_entry', 'idempotency_record'):
                    db.execute_sql('DELETE FROM %s' % table)
                # Row 0, the external counterparty, belongs to the schema.
                db.execute_sql('DELETE FROM account WHERE id <> 0')


class LedgerMachine(RuleBasedStateMachine):
    client = None  # set by the test: a falcon.testing.TestClient
    db = None

    def __init__(self):
        super().__init__()
        _reset(self.db)
        self.model = Model()
        self.recorded = []  # keyed requests the server recorded, with their answers
        self.keys = 0
        self.steps = 0
        self.diverged = False

    # -- plumbing

    def _send(self, method, path, fields=None, json_body=False, keyed=False):
        headers, body = {}, None
        if fields is not None:
            if json_body:
                headers.update(JSON)
                body = _json_body({name: value.json for name, value in fields.items()})
            else:
                headers.update(FORM)
                body = _form_body({name: value.form for name, value in fields.items()})
        if keyed:
            self.keys += 1
            headers['Idempotency-Key'] = 'key-%d' % self.keys
        result = self.client.simulate_request(method, path, body=body, headers=headers)
        return result, Sent(method, path, body, headers, result.status_code, result.json)

    @contextlib.contextmanager
    def _comparing(self):
        """Once the API and the model disagree, the end-of-example checks would only
        repeat the disagreement (and hide the step that caused it)."""
        try:
            yield
        except BaseException:
            self.diverged = True
            raise

    def _check(self, result, sent, expected, apply=None):
        with self._comparing():
            assert (result.status_code, result.json) == (expected.status, expected.body), (
                sent.method, sent.path, sent.body)
            assert result.headers.get('Idempotent-Replayed') is None
        if apply is not None:
            apply()
        self.model.journal_rows += expected.journal_rows
        if 'Idempotency-Key' in sent.headers and expected.recorded:
            self.recorded.append(sent)

    # -- rules

    @initialize(uids=st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True),
                cents=st.lists(mostly(st.integers(1, 10000), st.just(0), one_in=4),
                               min_size=3, max_size=3))
    def open_accounts(self, uids, cents):
        """Start with a few users, most of them with money."""
        for uid, amount in zip(uids, cents):
            value = Value(str(uid), uid, uid)
            expected, apply = self.model.create(uid, '', '', False)
            self._check(*self._send('POST', '/user', {'uid': value}), expected, apply)
            if amount:
                amount = Decimal(amount) / 100
                expected, apply = self.model.change(str(uid), 'add', amount, True, False)
                fields = {'operation': Value('add', 'add', 'add'),
                          'balance': Value(money(amount), money(amount), amount)}
                self._check(*self._send('PUT', '/balance/%d' % uid, fields), expected, apply)

    @rule(data=st.data(), email=emails, msisdn=msisdns, restore=restores, extra=extras,
          json_body=as_json, keyed=use_key)
    def create_user(self, data, email, msisdn, restore, extra, json_body, keyed):
        # Mostly ids not in use: creating a live user again is a no-op, a deleted
        # one is refused unless restored.
        uid = data.draw(mostly(id_values(POOL), ids(self.model.balances), one_in=3))
        fields = {'uid': uid, 'email': email, 'msisdn': msisdn, 'restore': restore}
        if extra:
            fields['bogus'] = Value('1', 1, None)
        expected, apply = self.model.create(uid.meaning(json_body), email.meaning(json_body),
                                            msisdn.meaning(json_body), extra,
                                            restore.meaning(json_body))
        self._check(*self._send('POST', '/user', fields, json_body, keyed), expected, apply)

    @rule(data=st.data(), keyed=use_key)
    def delete_user(self, data, keyed):
        uid = data.draw(path_ids(self.model.balances))
        expected, apply = self.model.delete(uid)
        self._check(*self._send('DELETE', '/balance_delete_user/%s' % uid, keyed=keyed),
                    expected, apply)

    @rule(data=st.data())
    def read_balance(self, data):
        uid = data.draw(path_ids(self.model.balances))
        self._check(*self._send('GET', '/balance/%s' % uid), self.model.read(uid))

    @rule(data=st.data(), operation=operations, amount=amounts, description=descriptions,
          extra=extras, json_body=as_json, keyed=use_key)
    def change_balance(self, data, operation, amount, description, extra, json_body, keyed):
        uid = data.draw(path_ids(self.model.balances))
        fields = {'operation': operation, 'balance': amount, 'trans_desc': description}
        if extra:
            fields['user_id'] = Value('1', 1, None)
        expected, apply = self.model.change(uid, operation.meaning(json_body),
                                            amount.meaning(json_body),
                                            description.meaning(json_body), extra)
        self._check(*self._send('PUT', '/balance/%s' % uid, fields, json_body, keyed),
                    expected, apply)

    @rule(data=st.data(), amount=amounts, description=descriptions, extra=extras,
          json_body=as_json, keyed=use_key)
    def transfer(self, data, amount, description, extra, json_body, keyed):
        sender = data.draw(ids(self.model.balances))
        receiver = data.draw(ids(self.model.balances))
        fields = {'sender_id': sender, 'receiver_id': receiver, 'balance': amount,
                  'trans_desc': description}
        if extra:
            fields['operation'] = Value('add', 'add', None)
        expected, apply = self.model.transfer(
            sender.meaning(json_body), receiver.meaning(json_body), amount.meaning(json_body),
            description.meaning(json_body), extra)
        self._check(*self._send('PUT', '/transfer', fields, json_body, keyed), expected, apply)

    @precondition(lambda self: any(self.model.balances.values()))
    @rule(data=st.data(), json_body=as_json, keyed=use_key)
    def withdraw_everything(self, data, json_body, keyed):
        """Take a user's whole balance, down to exactly zero (so it can be deleted)."""
        uid = data.draw(st.sampled_from(sorted(u for u, b in self.model.balances.items() if b)))
        amount = self.model.balances[uid]
        fields = {'operation': Value('sub', 'sub', 'sub'),
                  'balance': Value(money(amount), Raw(money(amount)), amount)}
        expected, apply = self.model.change(str(uid), 'sub', amount, True, False)
        self._check(*self._send('PUT', '/balance/%d' % uid, fields, json_body, keyed),
                    expected, apply)

    @precondition(lambda self: self.model.balances)
    @rule(data=st.data(), cents=st.integers(-1, 1), json_body=as_json)
    def deposit_up_to_the_maximum(self, data, cents, json_body):
        """Fill a balance to one cent below, exactly at or one cent above the maximum."""
        uid = data.draw(st.sampled_from(sorted(self.model.balances)))
        amount = MAX_BALANCE - self.model.balances[uid] + Decimal(cents) / 100
        valid = amount.quantize(CENT) if 0 < amount <= MAX_BALANCE else None
        fields = {'operation': Value('add', 'add', 'add'),
                  'balance': Value(money(amount), money(amount), valid)}
        expected, apply = self.model.change(str(uid), 'add', valid, True, False)
        self._check(*self._send('PUT', '/balance/%d' % uid, fields, json_body), expected, apply)

    @precondition(lambda self: len(self.model.balances) >= 2)
    @rule(data=st.data(), description=descriptions, json_body=as_json, keyed=use_key)
    def transfer_between_users(self, data, description, json_body, keyed):
        """Two different live users, an amount mostly within the sender's means."""
        live = sorted(self.model.balances)
        funded = [uid for uid in live if self.model.balances[uid]] or live
        sender = data.draw(st.sampled_from(funded))
        receiver = data.draw(st.sampled_from([uid for uid in live if uid != sender]))
        funds = int(self.model.balances[sender] * 100)
        if funds:
            amount = data.draw(mostly(st.integers(1, funds).map(lambda cents: Decimal(cents) / 100)
                                      .map(lambda amount: Value(money(amount), Raw(money(amount)),
                                                                amount)),
                                      valid_amounts(), one_in=4))
        else:
            amount = data.draw(valid_amounts())
        fields = {'sender_id': Value(str(sender), sender, sender),
                  'receiver_id': Value(str(receiver), receiver, receiver),
                  'balance': amount, 'trans_desc': description}
        expected, apply = self.model.transfer(sender, receiver, amount.value,
                                              description.meaning(json_body), False)
        self._check(*self._send('PUT', '/transfer', fields, json_body, keyed), expected, apply)

    @precondition(lambda self: self.recorded)
    @rule(data=st.data(), same_input=st.booleans(), uid=st.sampled_from(POOL))
    def repeat_key(self, data, same_input, uid):
        """A keyed request again: with the same input it gets the first answer, with
        another input it is refused; either way nothing changes."""
        first = data.draw(st.sampled_from(self.recorded))
        with self._comparing():
            self._repeat(first, same_input, uid)

    def _repeat(self, first, same_input, uid):
        if same_input:
            result = self.client.simulate_request(first.method, first.path, body=first.body,
                                                  headers=first.headers)
            assert (result.status_code, result.json) == (first.status, first.answer)
            assert result.headers.get('Idempotent-Replayed') == 'true'
        else:
            result = self.client.simulate_put(
                '/balance/%d' % uid, body='operation=add&balance=1&trans_desc=other-input',
                headers={**FORM, 'Idempotency-Key': first.headers['Idempotency-Key']})
            assert (result.status_code, result.json) == (
                409, {'code': 518, 'message': MESSAGES[518]})

    # -- invariants

    @invariant()
    def balances_match(self):
        with self._comparing():
            result = self.client.simulate_get('/balance')
            assert result.status_code == 200
            assert result.json == self.model.all_balances()
        self.steps += 1
        if self.steps % 10 == 0:
            self.check_ledger()

    def check_ledger(self):
        """One journal row per change, and the ledger verifies."""
        with self._comparing():
            history = self.client.simulate_get('/history')
            assert history.status_code == 200
            assert len(history.json) == self.model.journal_rows
            with self.db.connection_context():
                report = verify_ledger(self.db)
            assert report.ok, report.problems
            assert report.journal_entries == self.model.journal_rows

    def teardown(self):
        if not self.diverged:
            self.check_ledger()


def test_api_matches_model(database_url):
    db = open_database(database_url)
    app = create_app(Settings(database_url=database_url), db=db)
    machine = type('LedgerMachine', (LedgerMachine,),
                   {'client': admin_client(app, db), 'db': db})
    try:
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        if is_postgres(db):
            db.close_all()
