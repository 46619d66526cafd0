"""Journal ids that readers can trust, and times taken after the locks.

Paging: journal ids come from a sequence, handed out before commit, so
while a smaller id is still uncommitted a larger one can already be read;
a client paging with after_id would step over the smaller row for good.
Migration 0002 held back rows younger than the oldest running transaction
of the whole cluster, which assumed that transaction ids and journal ids
are taken in the same order (they are not: a transaction may take its id,
wait for a lock, and only then take a journal id) and stalled on any open
transaction in any database. Instead, every writer now holds an advisory
lock keyed by its backend from just before it takes a journal id until it
commits (``journal_next_entry``), and a reader first calls
``journal_settled_id``: it notes the largest id handed out so far, then
waits for the writers holding that lock in this database. When it returns,
every id up to the one it names is committed or rolled back for good, so a
query in a later statement sees all of them or none.

Times: an entry's time is read from the database clock after its accounts
are locked and after its id is taken, and never earlier than a microsecond
after the previous posting of any account it touches
(``account.last_posted_at``), so within an account's chain times strictly
increase, and an entry dated on a day had its id before that day ended.
``ledger_post`` loses its ``created_at`` argument accordingly.

SQLite commits one writer at a time, in id order, and reads Python's clock
inside its write lock; it only gains ``last_posted_at``.

Entries written before this migration may be out of time order (on
PostgreSQL their time was read before the locks), so ``ledger_rule_start``
records the first journal id the time-order rule holds for, and ``verify``
checks the rule from there on.
"""
import importlib.util
import os

from peewee import SqliteDatabase

# Executed without parameters, so a literal percent sign is written %%.
# 0x6a726e6c ('jrnl') names this service's writer locks among the
# advisory locks other applications may take in the same database.
JOURNAL_FUNCTIONS = r"""
CREATE FUNCTION journal_next_entry(OUT id bigint, OUT created_at timestamp)
LANGUAGE plpgsql VOLATILE AS $function$
BEGIN
    -- Held until this transaction ends; see journal_settled_id.
    PERFORM pg_advisory_xact_lock(1785884268, pg_backend_pid());
    id := nextval('journal_entry_id_seq');
    created_at := clock_timestamp() AT TIME ZONE 'UTC';
END
$function$;

CREATE FUNCTION journal_next_id() RETURNS bigint
LANGUAGE sql VOLATILE AS $function$ SELECT id FROM journal_next_entry() $function$;

CREATE FUNCTION journal_settled_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $function$
DECLARE
    settled bigint;
    writer integer;
BEGIN
    -- Read before looking for writers: a writer that took an id up to this
    -- one took its lock first, so it is either found below or done.
    SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
      INTO settled FROM journal_entry_id_seq;
    FOR writer IN
        SELECT objid::text::integer FROM pg_locks
         WHERE locktype = 'advisory' AND classid = 1785884268 AND objsubid = 2
           AND granted AND pid <> pg_backend_pid()
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    LOOP
        -- Granted when that writer's transaction ends; released when the
        -- caller's does, so call this as a statement of its own, outside a
        -- transaction, or writers on that backend wait for the caller.
        PERFORM pg_advisory_xact_lock_shared(1785884268, writer);
    END LOOP;
    RETURN settled;
END
$function$;
"""

LEDGER_POST = r"""
CREATE OR REPLACE FUNCTION ledger_post(
    operation text, sender_id bigint, receiver_id bigint, amount numeric,
    description text,
    OUT refusal integer, OUT sender_balance numeric, OUT receiver_balance numeric)
LANGUAGE plpgsql AS $function$
DECLARE
    -- balance_api.money.models.EXTERNAL_ACCOUNT_ID: the world outside the ledger,
    -- never locked, never updated.
    external CONSTANT bigint := 0;
    largest CONSTANT numeric := 99999999999999999.99;
    separator CONSTANT text := chr(31);
    is_transfer boolean := operation = 'balance_transfer';
    locked record;
    sender account%%ROWTYPE;
    receiver account%%ROWTYPE;
    -- The user's signed amount for a deposit or withdrawal.
    delta numeric;
    journal_id bigint;
    posted_at timestamp;
    entry_fields text;
    sender_hash text;
    receiver_hash text;
BEGIN
    refusal := 0;
    IF operation NOT IN ('balance_transfer', 'balance_add', 'balance_sub') THEN
        RAISE EXCEPTION USING MESSAGE = 'ledger_post: unknown operation ' || operation;
    END IF;
    IF amount IS NULL OR amount <= 0 OR amount <> round(amount, 2) THEN
        RAISE EXCEPTION USING MESSAGE =
            'ledger_post: amount must be positive whole cents, not ' || coalesce(amount::text, 'null');
    END IF;
    -- A transfer is between two users; a deposit or withdrawal is the
    -- receiver's, against the external account.
    IF sender_id = receiver_id OR receiver_id = external
            OR (is_transfer AND sender_id = external)
            OR (NOT is_transfer AND sender_id <> external) THEN
        RAISE EXCEPTION USING MESSAGE = format(
            'ledger_post: %%s from %%s to %%s names the wrong accounts',
            operation, sender_id, receiver_id);
    END IF;

    -- Ascending id order, as every writer of accounts locks them.
    FOR locked IN SELECT * FROM account
                   WHERE id IN (sender_id, receiver_id) AND id <> external
                   ORDER BY id FOR UPDATE LOOP
        IF locked.id = sender_id THEN
            sender := locked;
        ELSE
            receiver := locked;
        END IF;
    END LOOP;

    IF receiver.id IS NULL OR receiver.deleted_at IS NOT NULL
            OR (is_transfer AND (sender.id IS NULL OR sender.deleted_at IS NOT NULL)) THEN
        refusal := 509;
        RETURN;
    END IF;
    IF is_transfer THEN
        sender_balance := sender.balance - amount;
        receiver_balance := receiver.balance + amount;
        delta := amount;
    ELSE
        delta := CASE operation WHEN 'balance_add' THEN amount ELSE -amount END;
        receiver_balance := receiver.balance + delta;
    END IF;
    IF sender_balance < 0 OR receiver_balance < 0 THEN
        refusal := 505;
        RETURN;
    END IF;
    IF abs(receiver_balance) > largest THEN
        refusal := 525;
        RETURN;
    END IF;

    -- The id after the last lock wait, so that it is held only until the
    -- commit that follows (journal_settled_id waits for it); the time after
    -- the id, and after the previous posting of either account.
    SELECT reserved.id, greatest(reserved.created_at,
                             sender.last_posted_at + interval '1 microsecond',
                             receiver.last_posted_at + interval '1 microsecond')
      INTO journal_id, posted_at FROM journal_next_entry() AS reserved;
    INSERT INTO journal_entry (id, created_at, operation, sender_id, receiver_id, sum,
                               transaction_description)
    VALUES (journal_id, posted_at, operation, sender_id, receiver_id, amount,
            description);

    -- balance_api.money.chain.posting_hash: previous hash, account, amount,
    -- balance after, then the entry's fields, joined by a unit separator.
    entry_fields := concat_ws(separator, journal_id,
        to_char(posted_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        operation, sender_id, receiver_id, amount::numeric(19, 2), description);
    receiver_hash := encode(sha256(convert_to(concat_ws(separator,
        receiver.last_hash, receiver_id, delta::numeric(19, 2),
        receiver_balance::numeric(19, 2), entry_fields), 'UTF8')), 'hex');

    IF is_transfer THEN
        sender_hash := encode(sha256(convert_to(concat_ws(separator,
            sender.last_hash, sender_id, (-amount)::numeric(19, 2),
            sender_balance::numeric(19, 2), entry_fields), 'UTF8')), 'hex');
        INSERT INTO posting (journal_id, account_id, amount, balance_after, created_at, hash)
        VALUES (journal_id, sender_id, -amount, sender_balance, posted_at,
                sender_hash),
               (journal_id, receiver_id, amount, receiver_balance, posted_at,
                receiver_hash);
        UPDATE account
           SET balance = CASE id WHEN sender_id THEN sender_balance ELSE receiver_balance END,
               last_hash = CASE id WHEN sender_id THEN sender_hash ELSE receiver_hash END,
               last_posted_at = posted_at
         WHERE id IN (sender_id, receiver_id);
    ELSE
        -- The external leg has no previous hash and no balance.
        sender_hash := encode(sha256(convert_to(concat_ws(separator,
            '', external, (-delta)::numeric(19, 2), '', entry_fields), 'UTF8')), 'hex');
        INSERT INTO posting (journal_id, account_id, amount, balance_after, created_at, hash)
        VALUES (journal_id, receiver_id, delta, receiver_balance, posted_at,
                receiver_hash),
               (journal_id, external, -delta, NULL, posted_at, sender_hash);
        UPDATE account SET balance = receiver_balance, last_hash = receiver_hash,
               last_posted_at = posted_at
         WHERE id = receiver_id;
    END IF;
END
$function$
"""


def _previous_ledger_post():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '0003_ledger_post_function.py')
    spec = importlib.util.spec_from_file_location('ledger_post_0003', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LEDGER_POST


def _record_rule_start(db, next_id_sql):
    db.execute_sql('CREATE TABLE ledger_rule_start (rule VARCHAR(32) PRIMARY KEY, '
                   'first_journal_id BIGINT NOT NULL)')
    db.execute_sql("INSERT INTO ledger_rule_start (rule, first_journal_id) "
                   "SELECT 'time order', (%s)" % next_id_sql)


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        db.execute_sql('ALTER TABLE account ADD COLUMN last_posted_at DATETIME')
        db.execute_sql('UPDATE account SET last_posted_at = (SELECT max(created_at) FROM posting '
                       'WHERE posting.account_id = account.id) WHERE id <> 0')
        _record_rule_start(db, 'SELECT coalesce(max(id), 0) + 1 FROM journal_entry')
        return
    # Taken before the old ledger_post is dropped below: an entry the old
    # code writes meanwhile has a smaller id.
    _record_rule_start(db, 'SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END '
                           'FROM journal_entry_id_seq')
    db.execute_sql('ALTER TABLE account ADD COLUMN last_posted_at timestamp')
    db.execute_sql('UPDATE account SET last_posted_at = newest.created_at FROM '
                   '(SELECT account_id, max(created_at) AS created_at FROM posting '
                   'GROUP BY account_id) AS newest '
                   'WHERE account.id = newest.account_id AND account.id <> 0')
    db.execute_sql(JOURNAL_FUNCTIONS)
    # Even an INSERT that names no id takes the writer lock first.
    db.execute_sql('ALTER TABLE journal_entry ALTER COLUMN id SET DEFAULT journal_next_id()')
    db.execute_sql('ALTER TABLE journal_entry DROP COLUMN txid')
    db.execute_sql('DROP FUNCTION ledger_post(text, bigint, bigint, numeric, text, timestamp)')
    db.execute_sql(LEDGER_POST)


def down(migrator, db):
    db.execute_sql('DROP TABLE ledger_rule_start')
    db.execute_sql('ALTER TABLE account DROP COLUMN last_posted_at')
    if isinstance(db, SqliteDatabase):
        return
    db.execute_sql('DROP FUNCTION ledger_post(text, bigint, bigint, numeric, text)')
    db.execute_sql(_previous_ledger_post())
    db.execute_sql("ALTER TABLE journal_entry ALTER COLUMN id SET DEFAULT "
                   "nextval('journal_entry_id_seq')")
    db.execute_sql('ALTER TABLE journal_entry ADD COLUMN txid xid8 NOT NULL '
                   'DEFAULT pg_current_xact_id()')
    db.execute_sql('DROP FUNCTION journal_settled_id()')
    db.execute_sql('DROP FUNCTION journal_next_id()')
    db.execute_sql('DROP FUNCTION journal_next_entry()')
