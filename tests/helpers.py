"""Shared helpers of the API tests: requests, the error catalogue, state snapshots."""
import contextlib
import json
import re
from urllib.parse import quote, urlencode

import peewee

from balance_api.money import pg_sql
from balance_api.storage import pg
from balance_api.storage.db import database, is_postgres
from balance_api.money.amounts import ZERO
from balance_api.money.chain import GENESIS_HASH, posting_hash
from balance_api.money.models import EXTERNAL_ACCOUNT_ID, Account, JournalEntry, Posting

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}
JSON = {'Content-Type': 'application/json'}

# Every error the API answers with: code -> (HTTP status, message).
ERRORS = {
    501: (500, 'Failed to add new user'),
    502: (500, 'Delete user failed'),
    503: (500, 'Failed to add/sub balance to user'),
    504: (422, 'Operation type mismatch. Failed to add/sub balance to user'),
    505: (409, 'User has not enough money'),
    507: (422, 'User ID format is not correct'),
    508: (422, 'balance format is not correct (use decimal 19.2). (1.04 for example)'),
    509: (404, 'User does not exist'),
    511: (409, 'Delete user failed - non zero balance'),
    512: (500, 'Failed saving balance history'),
    513: (422, 'Sender and receiver must be different users'),
    514: (422, 'History date format is not correct (use YYYY-MM-DD)'),
    515: (422, 'History query is not correct (keys: uid, date-start, date-end, limit, after_id)'),
    516: (422, 'History date-start is after date-end'),
    517: (422, 'History paging is not correct (limit and after_id are positive integers)'),
    518: (409, 'Idempotency-Key was already used with a different request'),
    519: (422, 'Idempotency-Key format is not correct '
               '(1 to 255 visible ASCII characters, no comma)'),
    520: (413, 'Request body is too large'),
    521: (411, 'Request body needs a Content-Length header'),
    522: (415, 'Content type is not supported '
               '(use application/x-www-form-urlencoded or application/json)'),
    523: (400, 'Request body is malformed (expected one form or JSON object, UTF-8)'),
    524: (422, 'Request has an unknown field'),
    525: (422, 'Resulting balance would exceed the maximum (decimal 19.2)'),
    526: (422, 'trans_desc format is not correct (text of at most 255 characters)'),
    527: (422, 'email or msisdn format is not correct'),
    528: (409, 'email or msisdn already belongs to another user'),
    529: (404, 'Not found'),
    530: (405, 'Method not allowed'),
    531: (503, 'Database is unavailable, retry later'),
    532: (500, 'Internal server error'),
    533: (400, 'Bad request'),
    534: (414, 'Request line is too long'),
    535: (431, 'Request header fields are too large'),
    536: (417, 'Expectation is not supported (only 100-continue)'),
    537: (501, 'Method is not implemented'),
    538: (501, 'Transfer coding is not implemented'),
    539: (416, 'Requested range is not satisfiable'),
    540: (400, 'Request needs a Host header'),
    541: (503, 'Database schema is not the one this version expects'),
    542: (409, 'User exists with different details'),
    543: (409, 'User was deleted (restore=true re-opens the same account)'),
    544: (422, 'restore format is not correct (true or false)'),
    601: (422, 'points format is not correct (a whole number other than 0, at most 15 digits)'),
    602: (422, 'payer format is not correct (1 to 64 characters)'),
    603: (422, 'timestamp format is not correct (ISO 8601, for example 2022-10-31T10:00:00Z)'),
    604: (422, 'spend points format is not correct (a positive whole number, at most 15 digits)'),
    605: (409, 'Not enough points in the wallet'),
    606: (409, "Not enough of the payer's points for this correction"),
    607: (409, 'The member never had points from this payer'),
    608: (422, 'Resulting points balance would exceed the maximum'),
    609: (422, 'points text field format is not correct'),
    610: (409, 'Duplicate transaction'),
    611: (422, 'Incorrect amount'),
    612: (422, 'club format is not correct (1 to 64 of a-z, 0-9, "_" and "-", first a-z or 0-9)'),
    613: (422, 'Events query is not correct (keys: type, event, message, wallet, amount, '
               'receipt_id, store_id, date-start, date-end, limit, before_id)'),
    614: (422, 'Events filter format is not correct'),
    615: (422, 'Events date format is not correct (use YYYY-MM-DD)'),
    616: (422, 'Events paging is not correct (limit and before_id are positive integers)'),
    701: (401, 'An API key is required (Authorization: Bearer <token> or X-Client-Authorization)'),
    702: (401, 'Authorization header format is not correct'),
    703: (401, 'API key is not valid'),
    704: (401, 'API key has been revoked'),
    705: (401, 'API key has expired'),
    706: (403, 'API key lacks the permit this operation needs'),
    707: (403, 'API key may act only for the user it is bound to'),
    801: (422, 'Export query is not correct (an unknown key, or a key given twice)'),
    802: (422, 'Export date format is not correct '
               '(date-start and date-end are required, YYYY-MM-DD)'),
    803: (422, 'Export date-start is after date-end'),
    804: (422, 'Export uid format is not correct (a positive integer that fits 64 bits)'),
    805: (422, 'Export operation is not correct '
               '(user_add, user_delete, balance_add, balance_sub or balance_transfer)'),
    806: (422, 'Export format is not correct (csv or jsonl)'),
    807: (422, 'Export event_type is not correct '
               '(purchase, campaign, issue, use, revoke, expire or other)'),
    810: (503, 'Signing key is not configured (SIGNING_KEY_FILE)'),
    811: (404, 'No public key: the signing key is not configured'),
    901: (422, 'number_of_codes format is not correct (a whole number from 1 to 1000000)'),
    902: (422, 'brand_id format is not correct (a positive integer that fits 64 bits)'),
    903: (422, 'user_id format is not correct (a positive integer that fits 64 bits)'),
    904: (404, 'Brand does not exist (no codes were ever generated for it)'),
    905: (404, 'User does not exist'),
    906: (409, 'The brand has no unclaimed discount codes left'),
    907: (403, 'user_secret is not a key of this user'),
    908: (403, 'user_id is required: the API key is bound to no user'),
    909: (500, 'Could not draw enough new codes for the brand'),
}

MAX_USER_ID = 9223372036854775807
MAX_BALANCE = '99999999999999999.99'
HISTORY_KEYS = {'id', 'date', 'receiver_id', 'sum', 'operation', 'transaction_description',
                'sender_id'}
DATE_FORMAT = re.compile(r'\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}')
MD5_HEX = re.compile(r'[0-9a-f]{32}')
AMOUNT_FORMAT = re.compile(r'[0-9]+\.[0-9]{2}')

# User ids that are not a positive integer fitting a signed 64-bit integer.
BAD_USER_IDS = ['0', '-1', '01', '9223372036854775808', '1.0', '1e2', 'abc', '+1', '1 ', ' 1',
                '\u0661']

# Amounts that are not positive decimals with <= 17 integer digits, no leading zero
# and <= 2 decimals.
BAD_AMOUNTS = ['0', '0.00', '-1', '-0.00', '1,04', '1.001', '1e3', 'NaN', '', ' 5', '5 ',
               '1_000', '\u0663', '0x10', '99999999999999999999.99', '100000000000000000',
               '05.00', '007', '00.50']


def encode_form(fields):
    """Form-encode ``fields`` (a dict or pairs), percent-encoding UTF-8 like browsers do."""
    return urlencode(fields, quote_via=quote)


def send_form(client, method, path, fields=None, headers=None):
    return client.simulate_request(method, path, body=encode_form(fields or {}),
                                   headers={**FORM, **(headers or {})})


def send_json(client, method, path, payload, headers=None):
    body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return client.simulate_request(method, path, body=body, headers={**JSON, **(headers or {})})


def assert_error(result, code):
    """The response is exactly the numbered error ``code``, as JSON."""
    status, message = ERRORS[code]
    assert result.status_code == status, (code, result.status_code, result.text)
    assert result.headers['content-type'].startswith('application/json'), result.headers
    assert result.json == {'code': code, 'message': message}


def assert_ok(result, status=200):
    assert result.status_code == status, result.text
    assert result.headers['content-type'].startswith('application/json')
    return result.json


def balance_of(client, user_id):
    return assert_ok(client.simulate_get('/balance/%d' % user_id))['balance']


def add(client, user_id, amount, trans_desc=None, headers=None):
    fields = {'operation': 'add', 'balance': amount}
    if trans_desc is not None:
        fields['trans_desc'] = trans_desc
    return send_form(client, 'PUT', '/balance/%d' % user_id, fields, headers)


def sub(client, user_id, amount, headers=None):
    return send_form(client, 'PUT', '/balance/%d' % user_id,
                     {'operation': 'sub', 'balance': amount}, headers)


def transfer(client, sender_id, receiver_id, amount, trans_desc=None, headers=None):
    fields = {'sender_id': sender_id, 'receiver_id': receiver_id, 'balance': amount}
    if trans_desc is not None:
        fields['trans_desc'] = trans_desc
    return send_form(client, 'PUT', '/transfer', fields, headers)


def history(client, query=''):
    """History rows for ``query`` in the path form (``uid=12&date-start=...``)."""
    path = '/history/' + query if query else '/history'
    return assert_ok(client.simulate_get(path))


def last_history_row(client):
    return history(client)[-1]


def snapshot():
    """Everything a change could touch, read in one go: accounts (deleted ones
    included), the journal history is made of, and the postings."""
    with database.connection_context():
        return {
            'accounts': list(Account.select(Account.id, Account.balance, Account.last_hash,
                                            Account.email, Account.msisdn, Account.deleted_at)
                             .order_by(Account.id).tuples()),
            'journal': list(JournalEntry.select().order_by(JournalEntry.id).tuples()),
            'postings': list(Posting.select(Posting.id, Posting.journal, Posting.account,
                                            Posting.amount, Posting.balance_after)
                             .order_by(Posting.id).tuples()),
        }


def set_entry_time(entry_id, moment):
    """Move a journal entry and its postings to ``moment`` (naive UTC)."""
    with database.connection_context():
        with database.atomic():
            JournalEntry.update(created_at=moment).where(JournalEntry.id == entry_id).execute()
            Posting.update(created_at=moment).where(Posting.journal == entry_id).execute()


def failing(exception_class):
    """A stand-in for a model method that fails the way the database would."""
    def fail(*args, **kwargs):
        raise exception_class('injected failure')
    return fail


# The SQLSTATE a PostgreSQL trigger raises to fail a write with an exception of
# this class (psycopg2 maps the code, peewee wraps it).
_SQLSTATES = {peewee.IntegrityError: '23000', peewee.OperationalError: '57014',
              peewee.DatabaseError: 'XX000'}


# The tables the server-side function ledger_post (migration 0003) writes.
_WRITTEN_BY_LEDGER_POST = ('account', 'journal_entry', 'posting')


@contextlib.contextmanager
def failing_write(monkeypatch, model, method, exception_class):
    """Make every write of ``model``'s table by ``method`` (``insert``,
    ``insert_many``, ``update``) fail with ``exception_class``, whichever path writes it.

    Writes built by the models fail where the method is called. On
    PostgreSQL the ledger writes a journal entry, its postings and the
    account states in one SQL statement (``balance_api.money.pg_sql``) that
    calls no model method, so the same write fails in the database: a
    trigger on the table raises a real server error that names the table,
    or, for failures no server raises (InterfaceError, a bug), the
    statement that writes the table raises before it is sent (a call of
    the ``ledger_post`` function writes all three ledger tables).
    """
    with monkeypatch.context() as patch:
        patch.setattr(model, method, failing(exception_class))
        db = database.obj
        if not is_postgres(db):
            yield
            return
        table = model._meta.table_name
        event = 'UPDATE' if method == 'update' else 'INSERT'
        if exception_class in _SQLSTATES:
            with _failing_trigger(db, table, event, _SQLSTATES[exception_class]):
                yield
            return
        pattern = r'\b%s\s+(INTO\s+)?"?%s"?[\s(]' % (event, table)
        if table in _WRITTEN_BY_LEDGER_POST:
            pattern += r'|\bledger_post\('
        _fail_statements(patch, db, pattern, exception_class)
        yield


@contextlib.contextmanager
def failing_read(monkeypatch, model, exception_class):
    """Make every read of ``model``'s table fail with ``exception_class``:
    ``model.select`` where the models build the query, and on PostgreSQL
    also the statements of ``balance_api.money.pg_sql`` that read the table."""
    with monkeypatch.context() as patch:
        patch.setattr(model, 'select', failing(exception_class))
        db = database.obj
        if is_postgres(db):
            _fail_statements(patch, db, r'\bFROM\s+"?%s"?\b' % model._meta.table_name,
                             exception_class)
        yield


def _fail_statements(patch, db, pattern, exception_class):
    """Statements matching ``pattern`` raise ``exception_class`` before they
    are sent, whether run as text or as prepared statements (``balance_api.storage.pg.run``)."""
    matches = re.compile(pattern, re.I).search

    def failing_version(run, sql_position):
        def run_or_fail(*args, **kwargs):
            if matches(args[sql_position]):
                raise exception_class('injected failure')
            return run(*args, **kwargs)
        return run_or_fail
    patch.setattr(db, 'execute_sql', failing_version(db.execute_sql, 0))
    # The domain's SQL module holds its own name for the runner.
    patch.setattr(pg, 'run', failing_version(pg.run, 1))
    patch.setattr(pg_sql, 'run', failing_version(pg_sql.run, 1))


@contextlib.contextmanager
def _failing_trigger(db, table, event, sqlstate):
    with db.connection_context():
        db.execute_sql(
            "CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'injected failure' "
            "USING ERRCODE = TG_ARGV[0], TABLE = TG_TABLE_NAME; END $$")
        db.execute_sql('CREATE TRIGGER injected_failure BEFORE %s ON %s FOR EACH ROW '
                       "EXECUTE FUNCTION injected_failure('%s')" % (event, table, sqlstate))
    try:
        yield
    finally:
        with db.connection_context():
            db.execute_sql('DROP TRIGGER injected_failure ON %s' % table)
            db.execute_sql('DROP FUNCTION injected_failure()')


def admin_client(app, db, name='test-admin'):
    """A falcon test client of ``app`` that sends a new admin key of ``db``."""
    import falcon.testing
    from gunicorn_server import bearer, create_key_in
    return falcon.testing.TestClient(app, headers=bearer(create_key_in(db, name, ['admin'])))


def rechain(db):
    """Rewrite every balance after, posting hash and account row to agree
    with the postings as they now are, as someone with write access could:
    afterwards only the checks beyond the chains can see what changed."""
    entries = {entry.id: entry for entry in JournalEntry.select()}
    running, chain, newest = {}, {}, {}
    with db.atomic():
        for posting in Posting.select().order_by(Posting.account, Posting.id):
            account_id, entry = posting.account_id, entries[posting.journal_id]
            external = account_id == EXTERNAL_ACCOUNT_ID
            after = None if external else running.get(account_id, ZERO) + posting.amount
            digest = posting_hash(
                '' if external else chain.get(account_id, GENESIS_HASH), account_id=account_id,
                amount=posting.amount, balance_after=after, journal_id=entry.id,
                created_at=entry.created_at, operation=entry.operation,
                sender_id=entry.sender_id, receiver_id=entry.receiver_id,
                journal_amount=entry.amount, description=entry.transaction_description)
            Posting.update(balance_after=after, hash=digest).where(
                Posting.id == posting.id).execute()
            if not external:
                running[account_id], chain[account_id] = after, digest
                newest[account_id] = posting.created_at
        for account_id, balance in running.items():
            Account.update(balance=balance, last_hash=chain[account_id],
                           last_posted_at=newest[account_id]).where(
                Account.id == account_id).execute()


@contextlib.contextmanager
def generation_held_open(db, brand_id, number):
    """A generation of ``number`` codes for the brand, in a thread of its own,
    held open after its audit row and codes are written (its audit id taken,
    nothing committed) until the block ends; then committed. Raises what the
    generation raised."""
    import threading
    from balance_api.discounts import service
    in_flight, release = threading.Event(), threading.Event()
    failures = []

    def generation():
        try:
            with db.connection_context():
                service.generate(db, brand_id, number,
                                 on_batch=lambda: (in_flight.set(), release.wait(30)))
        except Exception as exc:   # raised below, in the test's thread
            failures.append(exc)
            in_flight.set()

    generating = threading.Thread(target=generation)
    generating.start()
    try:
        assert in_flight.wait(30), 'the generation never wrote its codes'
        yield
    finally:
        release.set()
        generating.join(30)
    if failures:
        raise failures[0]


def waits_for(block, seconds=1.0):
    """Run ``block()`` in a thread; ``(thread, answers)`` after ``seconds``: the
    thread still alive if ``block`` is waiting, ``answers`` its result once done."""
    import threading
    answers = []
    running = threading.Thread(target=lambda: answers.append(block()))
    running.start()
    running.join(seconds)
    return running, answers
