"""Discount audit ids that a checkpoint can trust.

Audit ids come from a sequence, handed out before commit: a generation
takes its audit row's id first and commits only after its last code,
seconds later, and two claims may commit in the other order than they took
their ids. A checkpoint that pinned a brand's audit rows up to the newest
one it could see would then miss a smaller id committed after it, and
every later check would report the brand rewritten.

As for the journal (migration 0004), every writer of an audit row now
holds an advisory lock keyed by its backend from just before it takes the
id until it commits: the id column's default, ``discount_audit_next_id()``,
takes it. A checkpoint first calls ``discount_audit_settled_id()``, which
notes the largest id handed out so far and then waits for the writers
holding that lock in this database; every audit id up to the one it names
is then committed or rolled back for good, and the checkpoint pins rows up
to it only.

A row's time is read after its id, from the database's clock
(``discount_audit_next_entry()``, used by the claim statement and by a
generation's row), as the journal's is: a row dated before a moment took
its id before it, so once an export of a closed day has waited for the
settled id, nothing dated in that day can still commit.

SQLite commits one writer at a time, in id order, and reads the time inside
its write lock: nothing changes there.
"""
from peewee import SqliteDatabase

# 0x64736374 ('dsct') names these writer locks among the advisory locks
# other applications (and the journal's, 'jrnl') take in the same database.
FUNCTIONS = r"""
CREATE FUNCTION discount_audit_next_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $function$
BEGIN
    -- Held until this transaction ends; see discount_audit_settled_id.
    PERFORM pg_advisory_xact_lock(1685283700, pg_backend_pid());
    RETURN nextval('discount_audit_id_seq');
END
$function$;

CREATE FUNCTION discount_audit_next_entry(OUT id bigint, OUT created_at timestamp)
LANGUAGE plpgsql VOLATILE AS $function$
BEGIN
    id := discount_audit_next_id();
    created_at := clock_timestamp() AT TIME ZONE 'UTC';
END
$function$;

CREATE FUNCTION discount_audit_settled_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $function$
DECLARE
    settled bigint;
    writer integer;
BEGIN
    -- Read before looking for writers: a writer that took an id up to this
    -- one took its lock first, so it is either found below or done.
    SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
      INTO settled FROM discount_audit_id_seq;
    FOR writer IN
        SELECT objid::text::integer FROM pg_locks
         WHERE locktype = 'advisory' AND classid = 1685283700 AND objsubid = 2
           AND granted AND pid <> pg_backend_pid()
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    LOOP
        -- Granted when that writer's transaction ends; released when the
        -- caller's does, so call this as a statement of its own, outside a
        -- transaction.
        PERFORM pg_advisory_xact_lock_shared(1685283700, writer);
    END LOOP;
    RETURN settled;
END
$function$;

ALTER TABLE discount_audit ALTER COLUMN id SET DEFAULT discount_audit_next_id();
"""


def up(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    db.execute_sql(FUNCTIONS)


def down(migrator, db):
    if isinstance(db, SqliteDatabase):
        return
    db.execute_sql("ALTER TABLE discount_audit ALTER COLUMN id "
                   "SET DEFAULT nextval('discount_audit_id_seq'::regclass)")
    db.execute_sql('DROP FUNCTION discount_audit_settled_id()')
    db.execute_sql('DROP FUNCTION discount_audit_next_entry()')
    db.execute_sql('DROP FUNCTION discount_audit_next_id()')
