"""Deposits, withdrawals and transfers in one statement on PostgreSQL.

``ledger_post`` does on the server what ``balance_api.money.ledger.Ledger`` does
in Python (which stays the only implementation on SQLite, and for creating
and deleting users everywhere): lock the accounts in ascending id order,
check every rule before the first write, then write the journal entry, its
postings with their SHA-256 chain hashes (``balance_api.money.chain``, byte for
byte) and the new account states. Called on its own it is one round trip
and its own transaction; inside a caller's transaction it joins it.

A refused change writes nothing and returns the API's error code instead
of raising, so the caller tells a refusal from a failure without parsing
messages: 509 a user is missing or deleted, 505 not enough money, 525 a
balance would not fit NUMERIC(19,2). ``verify`` recomputes every hash in
Python, so the two implementations cannot drift apart unnoticed.
"""
from peewee import SqliteDatabase

# Executed without parameters, so a literal percent sign is written %%.
LEDGER_POST = r"""
CREATE OR REPLACE FUNCTION ledger_post(
    operation text, sender_id bigint, receiver_id bigint, amount numeric,
    description text, created_at timestamp,
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

    -- The entry's id is taken once the transaction has its own id, so that
    -- paged history reads can hold back rows of transactions still running
    -- (migration 0002).
    PERFORM pg_current_xact_id();
    journal_id := nextval('journal_entry_id_seq');
    INSERT INTO journal_entry (id, created_at, operation, sender_id, receiver_id, sum,
                               transaction_description)
    VALUES (journal_id, ledger_post.created_at, operation, sender_id, receiver_id, amount,
            description);

    -- balance_api.money.chain.posting_hash: previous hash, account, amount,
    -- balance after, then the entry's fields, joined by a unit separator.
    entry_fields := concat_ws(separator, journal_id,
        to_char(ledger_post.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        operation, sender_id, receiver_id, amount::numeric(19, 2), description);
    receiver_hash := encode(sha256(convert_to(concat_ws(separator,
        receiver.last_hash, receiver_id, delta::numeric(19, 2),
        receiver_balance::numeric(19, 2), entry_fields), 'UTF8')), 'hex');

    IF is_transfer THEN
        sender_hash := encode(sha256(convert_to(concat_ws(separator,
            sender.last_hash, sender_id, (-amount)::numeric(19, 2),
            sender_balance::numeric(19, 2), entry_fields), 'UTF8')), 'hex');
        INSERT INTO posting (journal_id, account_id, amount, balance_after, created_at, hash)
        VALUES (journal_id, sender_id, -amount, sender_balance, ledger_post.created_at,
                sender_hash),
               (journal_id, receiver_id, amount, receiver_balance, ledger_post.created_at,
                receiver_hash);
        UPDATE account
           SET balance = CASE id WHEN sender_id THEN sender_balance ELSE receiver_balance END,
               last_hash = CASE id WHEN sender_id THEN sender_hash ELSE receiver_hash END
         WHERE id IN (sender_id, receiver_id);
    ELSE
        -- The external leg has no previous hash and no balance.
        sender_hash := encode(sha256(convert_to(concat_ws(separator,
            '', external, (-delta)::numeric(19, 2), '', entry_fields), 'UTF8')), 'hex');
        INSERT INTO posting (journal_id, account_id, amount, balance_after, created_at, hash)
        VALUES (journal_id, receiver_id, delta, receiver_balance, ledger_post.created_at,
                receiver_hash),
               (journal_id, external, -delta, NULL, ledger_post.created_at, sender_hash);
        UPDATE account SET balance = receiver_balance, last_hash = receiver_hash
         WHERE id = receiver_id;
    END IF;
END
$function$
"""


def up(migrator, db):
    if not isinstance(db, SqliteDatabase):
        db.execute_sql(LEDGER_POST)


def down(migrator, db):
    if not isinstance(db, SqliteDatabase):
        db.execute_sql('DROP FUNCTION ledger_post(text, bigint, bigint, numeric, text, '
                       'timestamp)')
