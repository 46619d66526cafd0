"""Bulk loader: a large, valid ledger written straight into PostgreSQL with COPY.

The schema comes from the service's own migrations; the rows are generated
here: accounts, journal entries and the matching double-entry postings, with
exact running balances and each account's SHA-256 hash chain computed by
``balance_api.money.chain.posting_hash``, so ``python -m balance_api verify`` passes
on the result. Secondary indexes are dropped during the load and rebuilt
afterwards; foreign keys are not checked row by row (the rows are consistent
by construction).

The seeded span grows with the journal, as a real one grows with time: one
calendar year per ``ROWS_PER_YEAR`` journal rows (rounded to the nearest whole
year, at least one), ending on ``SEED_END``. 1,000,000 rows cover 2024,
10,000,000 rows 2015 to 2024; smaller seeds cover 2024. For a given number
of accounts, activity per user and day therefore stays the same whatever the
size, so a bigger seed measures a longer journal, not bigger answers to the
same date range.

Layout of a seed of A accounts and R journal rows:

* users 1..A, each created (``user_add``) and given ``INITIAL_BALANCE``
  (``balance_add``) at the start of the seeded span;
* the hot account A+1, created and given ``HOT_BALANCE``;
* the remaining rows spread evenly over the seeded span (timestamps
  increase with the journal id): 80% transfers between two random users,
  10% deposits, 10% withdrawals, amounts 0.01 to 100.00.

Nothing happens after the seeded span, so rows the benchmark writes later
(stamped with the real clock) never fall in a seeded date range.
"""
import datetime
import io
import queue
import random
import subprocess
import sys
import threading
import time
from decimal import Decimal
from typing import NamedTuple

from balance_api.money.chain import GENESIS_HASH, posting_hash

# Bumped whenever the generated data changes, so old seeds are not reused.
LOADER_VERSION = 2

SEED_END = datetime.datetime(2025, 1, 1)
ROWS_PER_YEAR = 1_000_000
INITIAL_BALANCE_CENTS = 100_000_000            # 1,000,000.00 per user
HOT_BALANCE_CENTS = 100_000_000_000_000_000    # 1,000,000,000,000,000.00
MAX_AMOUNT_CENTS = 10_000                      # 100.00
EXTERNAL = 0

CHUNK_ENTRIES = 50_000
COPY_BUFFER = 1 << 18

JOURNAL_COLUMNS = ('id', 'created_at', 'operation', 'sender_id', 'receiver_id', 'sum',
                   'transaction_description')
POSTING_COLUMNS = ('id', 'journal_id', 'account_id', 'amount', 'balance_after', 'created_at',
                   'hash')
ACCOUNT_COLUMNS = ('id', 'balance', 'last_hash', 'created_at')


class SeedSpec(NamedTuple):
    accounts: int
    rows: int
    rng_seed: int = 1

    @property
    def hot_account(self):
        return self.accounts + 1

    @property
    def years(self):
        """Whole calendar years seeded: ROWS_PER_YEAR rows each, rounded half up, at least 1."""
        return max(1, (self.rows + ROWS_PER_YEAR // 2) // ROWS_PER_YEAR)

    @property
    def start(self):
        return SEED_END.replace(year=SEED_END.year - self.years)

    @property
    def end(self):
        """The first moment after the seeded span."""
        return SEED_END

    @property
    def days(self):
        return (self.end - self.start).days

    @property
    def first_day(self):
        return self.start.date()

    @property
    def last_day(self):
        return (self.end - datetime.timedelta(days=1)).date()

    @property
    def span_text(self):
        return '%s to %s' % (self.first_day, self.last_day)

    @property
    def database(self):
        return 'bench_seed_v%d_a%d_r%d' % (LOADER_VERSION, self.accounts, self.rows)

    def check(self):
        if self.accounts < 2:
            raise ValueError('a seed needs at least 2 accounts')
        if self.rows < 2 * (self.accounts + 1):
            raise ValueError('a seed of %d accounts needs at least %d journal rows'
                             % (self.accounts, 2 * (self.accounts + 1)))


def _money(cents):
    """Cents as the text PostgreSQL reads into NUMERIC(19,2)."""
    if cents < 0:
        whole, part = divmod(-cents, 100)
        return '-%d.%02d' % (whole, part)
    whole, part = divmod(cents, 100)
    return '%d.%02d' % (whole, part)


def _decimal(cents):
    return Decimal(cents).scaleb(-2)


class _Generator:
    """Produces the ledger in journal-id order, chunk by chunk, as COPY text."""

    def __init__(self, spec):
        self.spec = spec
        self.rng = random.Random(spec.rng_seed)
        size = spec.accounts + 2
        self.balance = [0] * size
        self.last_hash = [GENESIS_HASH] * size
        self.journal_id = 0
        self.posting_id = 0
        self.journal = io.StringIO()
        self.postings = io.StringIO()
        self.entries_in_chunk = 0

    def _entry(self, moment, operation, sender, receiver, cents, legs):
        """One journal entry; ``legs`` are (account, signed cents)."""
        self.journal_id += 1
        journal_id = self.journal_id
        description = '%032x' % self.rng.getrandbits(128)
        stamp = moment.isoformat(sep=' ')
        amount_text = _money(cents)
        amount = _decimal(cents)
        self.journal.write('%d\t%s\t%s\t%d\t%d\t%s\t%s\n' % (
            journal_id, stamp, operation, sender, receiver, amount_text, description))
        write = self.postings.write
        for account, delta in legs:
            self.posting_id += 1
            if account == EXTERNAL:
                digest = posting_hash(
                    '', account_id=EXTERNAL, amount=_decimal(delta), balance_after=None,
                    journal_id=journal_id, created_at=moment, operation=operation,
                    sender_id=sender, receiver_id=receiver, journal_amount=amount,
                    description=description)
                write('%d\t%d\t0\t%s\t\\N\t%s\t%s\n' % (
                    self.posting_id, journal_id, _money(delta), stamp, digest))
                continue
            after = self.balance[account] + delta
            if after < 0:
                raise AssertionError('seed would overdraw account %d' % account)
            digest = posting_hash(
                self.last_hash[account], account_id=account, amount=_decimal(delta),
                balance_after=_decimal(after), journal_id=journal_id, created_at=moment,
                operation=operation, sender_id=sender, receiver_id=receiver,
                journal_amount=amount, description=description)
            self.balance[account] = after
            self.last_hash[account] = digest
            write('%d\t%d\t%d\t%s\t%s\t%s\t%s\n' % (
                self.posting_id, journal_id, account, _money(delta), _money(after), stamp,
                digest))
        self.entries_in_chunk += 1

    def deposit_or_withdrawal(self, moment, account, cents, deposit):
        """A deposit of ``cents``, or a withdrawal when ``deposit`` is false and the
        balance covers it."""
        if deposit or self.balance[account] < cents:
            self._entry(moment, 'balance_add', EXTERNAL, account, cents,
                        [(account, cents), (EXTERNAL, -cents)])
        else:
            self._entry(moment, 'balance_sub', EXTERNAL, account, cents,
                        [(account, -cents), (EXTERNAL, cents)])

    def _flush(self):
        chunk = (self.journal.getvalue(), self.postings.getvalue(), self.entries_in_chunk)
        self.journal, self.postings = io.StringIO(), io.StringIO()
        self.entries_in_chunk = 0
        return chunk

    def chunks(self):
        spec, rng = self.spec, self.rng
        users = spec.accounts
        # Opening entries: one millisecond apart from the start of the span.
        moment = spec.start
        step = datetime.timedelta(milliseconds=1)
        for account in list(range(1, users + 1)) + [spec.hot_account]:
            opening = HOT_BALANCE_CENTS if account == spec.hot_account else INITIAL_BALANCE_CENTS
            self._entry(moment, 'user_add', EXTERNAL, account, 0, [(account, 0)])
            moment += step
            self._entry(moment, 'balance_add', EXTERNAL, account, opening,
                        [(account, opening), (EXTERNAL, -opening)])
            moment += step
            if self.entries_in_chunk >= CHUNK_ENTRIES:
                yield self._flush()

        # The rest, evenly over the span (one hour in, to the last second).
        remaining = spec.rows - self.journal_id
        first = spec.start + datetime.timedelta(hours=1)
        span_us = int((spec.end - first).total_seconds() * 1_000_000) - 1_000_000
        slot = span_us / max(remaining, 1)
        randrange, rand = rng.randrange, rng.random
        balance = self.balance
        for index in range(remaining):
            moment = first + datetime.timedelta(microseconds=int((index + rand()) * slot))
            cents = randrange(1, MAX_AMOUNT_CENTS + 1)
            kind = rand()
            if kind < 0.8:
                sender = randrange(1, users + 1)
                receiver = randrange(1, users)
                if receiver >= sender:
                    receiver += 1
                if balance[sender] < cents:
                    sender, receiver = receiver, sender
                self._entry(moment, 'balance_transfer', sender, receiver, cents,
                            [(sender, -cents), (receiver, cents)])
            else:
                self.deposit_or_withdrawal(moment, randrange(1, users + 1), cents,
                                           deposit=kind < 0.9)
            if self.entries_in_chunk >= CHUNK_ENTRIES:
                yield self._flush()
        if self.entries_in_chunk:
            yield self._flush()

    def accounts_text(self):
        stamp = self.spec.start.isoformat(sep=' ')
        out = io.StringIO()
        for account in list(range(1, self.spec.accounts + 1)) + [self.spec.hot_account]:
            out.write('%d\t%s\t%s\t%s\n' % (account, _money(self.balance[account]),
                                            self.last_hash[account], stamp))
        return out.getvalue()


def _copy(cursor, table, columns, text):
    cursor.copy_expert('COPY %s (%s) FROM STDIN' % (table, ', '.join(columns)),
                       io.StringIO(text), size=COPY_BUFFER)


def copy_entries(cursor, generator):
    """COPY the generator's pending journal entries and postings, if any."""
    if generator.entries_in_chunk:
        journal_text, posting_text, _ = generator._flush()
        _copy(cursor, 'journal_entry', JOURNAL_COLUMNS, journal_text)
        _copy(cursor, 'posting', POSTING_COLUMNS, posting_text)


def reset_sequences(cursor):
    """Point the journal's and the postings' id sequences past the rows COPY wrote."""
    for table in ('journal_entry', 'posting'):
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM "
                       + table + '))', (table,))


def _secondary_indexes(cursor, tables):
    """(name, definition) of the plain indexes on ``tables`` (not keys or unique constraints)."""
    cursor.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
             FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relname = ANY(%s) AND NOT i.indisprimary AND NOT i.indisunique
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            ORDER BY 1""", (list(tables),))
    return cursor.fetchall()


def seed(pg, spec, python=sys.executable, log=None, progress=print):
    """Create database ``spec.database`` holding the seeded ledger; returns seconds taken.

    Built under a temporary name and renamed when complete, so a database
    with the final name is always a finished seed.
    """
    spec.check()
    started = time.perf_counter()
    building = spec.database + '_building'
    pg.drop(building)
    pg.create(building)
    env = {'DATABASE_URL': pg.database_url(building)}
    subprocess.run([python, '-m', 'balance_api', 'migrate'], check=True,
                   env={**pg.client_env(), **env}, stdout=log, stderr=log)

    conn = pg.connect(building, autocommit=False)
    cursor = conn.cursor()
    cursor.execute("SET session_replication_role = replica")   # no per-row FK triggers
    cursor.execute("SET maintenance_work_mem = '512MB'")
    cursor.execute('SELECT count(*) FROM journal_entry')
    if cursor.fetchone()[0]:
        raise RuntimeError('a freshly migrated database already has journal rows')
    indexes = _secondary_indexes(cursor, ('journal_entry', 'posting'))
    for name, _ in indexes:
        cursor.execute('DROP INDEX %s' % name)

    # Generation (Python) and COPY (the server) overlap: one chunk in flight.
    work = queue.Queue(maxsize=2)
    failure = []

    def writer():
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                journal_text, posting_text = item
                _copy(cursor, 'journal_entry', JOURNAL_COLUMNS, journal_text)
                _copy(cursor, 'posting', POSTING_COLUMNS, posting_text)
        except BaseException as exc:  # reported by the producer
            failure.append(exc)
            while work.get() is not None:
                pass

    thread = threading.Thread(target=writer, name='copy-writer', daemon=True)
    thread.start()
    generator = _Generator(spec)
    done = 0
    last_report = time.perf_counter()
    try:
        for journal_text, posting_text, count in generator.chunks():
            if failure:
                break
            work.put((journal_text, posting_text))
            done += count
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                progress('  seeded %d / %d journal rows (%.0f s)'
                         % (done, spec.rows, last_report - started))
    finally:
        work.put(None)
        thread.join()
    if failure:
        conn.rollback()
        raise failure[0]

    _copy(cursor, 'account', ACCOUNT_COLUMNS, generator.accounts_text())
    reset_sequences(cursor)
    progress('  rows loaded in %.0f s; building indexes' % (time.perf_counter() - started))
    for _, definition in indexes:
        cursor.execute(definition)
    conn.commit()
    conn.autocommit = True
    cursor.execute('VACUUM (ANALYZE, FREEZE)')
    cursor.close()
    conn.close()
    pg.rename(building, spec.database)
    return time.perf_counter() - started


def verify(pg, database, python=sys.executable, timeout=None):
    """``python -m balance_api verify`` on a database; returns (ok, output)."""
    result = subprocess.run([python, '-m', 'balance_api', 'verify'], capture_output=True,
                            text=True, timeout=timeout,
                            env={**pg.client_env(), 'DATABASE_URL': pg.database_url(database)})
    return result.returncode == 0, (result.stdout + result.stderr).strip()


# -- the busy account of scenario 12 -------------------------------------

BUSY_OPENING_CENTS = 100_000_000_000               # 1,000,000,000.00
BUSY_ENTRIES_STEP = datetime.timedelta(microseconds=500)


# Scenario 9 creates its members right after the hot account, one per repeat.
BUSY_ACCOUNT_OFFSET = 1001


def busy_account(spec):
    """The account scenario 12 makes busy: clear of the hot account and of the
    members scenario 9 creates after it."""
    return spec.accounts + BUSY_ACCOUNT_OFFSET


def append_accounts(pg, database, spec, accounts, entries_each, start, step, rng_offset,
                    opening_cents=BUSY_OPENING_CENTS):
    """Give ``database`` (a run database, never the seed) the new ``accounts`` (ids),
    each on one side of ``entries_each`` journal entries: created (``user_add``), given
    ``opening_cents``, then deposits and withdrawals (half each, 0.01 to 100.00) against
    the external account, each its own entry with the account's posting and the
    external one, the hash chain and running balances exact as in ``seed``. Dated from
    ``start``, ``step`` apart, and numbered after every row already there (COPY, one
    transaction). The accounts take turns, an entry each, so that each one's postings
    lie spread over the tables as a real account's do, not side by side."""
    first, last = min(accounts), max(accounts)
    conn = pg.connect(database, autocommit=False)
    cursor = conn.cursor()
    try:
        cursor.execute("SET session_replication_role = replica")   # no per-row FK triggers
        cursor.execute('SELECT count(*) FROM account WHERE id BETWEEN %s AND %s', (first, last))
        if cursor.fetchone()[0]:
            raise RuntimeError('accounts %d..%d are taken in %s' % (first, last, database))
        cursor.execute('SELECT coalesce(max(id), 0) FROM journal_entry')
        journal_before = cursor.fetchone()[0]
        cursor.execute('SELECT coalesce(max(id), 0) FROM posting')
        posting_before = cursor.fetchone()[0]

        generator = _Generator(spec._replace(rng_seed=spec.rng_seed + rng_offset))
        # Room for the new accounts' running balances and hashes, by id.
        missing = last + 1 - len(generator.balance)
        generator.balance.extend([0] * missing)
        generator.last_hash.extend([GENESIS_HASH] * missing)
        generator.journal_id = journal_before
        generator.posting_id = posting_before
        rng = generator.rng
        moment = start
        created, newest = {}, {}
        for turn in range(entries_each):
            for account in accounts:
                if turn == 0:
                    created[account] = moment
                    generator._entry(moment, 'user_add', EXTERNAL, account, 0, [(account, 0)])
                elif turn == 1:
                    generator._entry(moment, 'balance_add', EXTERNAL, account, opening_cents,
                                     [(account, opening_cents), (EXTERNAL, -opening_cents)])
                else:
                    cents = rng.randrange(1, MAX_AMOUNT_CENTS + 1)
                    generator.deposit_or_withdrawal(moment, account, cents,
                                                    deposit=rng.random() < 0.5)
                newest[account] = moment
                moment += step
                if generator.entries_in_chunk >= CHUNK_ENTRIES:
                    copy_entries(cursor, generator)
        copy_entries(cursor, generator)
        rows = io.StringIO()
        for account in accounts:
            rows.write('%d\t%s\t%s\t%s\t%s\n' % (
                account, _money(generator.balance[account]), generator.last_hash[account],
                created[account].isoformat(sep=' '), newest[account].isoformat(sep=' ')))
        _copy(cursor, 'account', ACCOUNT_COLUMNS + ('last_posted_at',), rows.getvalue())
        reset_sequences(cursor)
        conn.commit()
        conn.autocommit = True
        for table in ('account', 'journal_entry', 'posting'):
            cursor.execute('ANALYZE ' + table)
    finally:
        cursor.close()
        conn.close()
    return moment


def load_busy_account(pg, database, spec, entries, log=None):
    """Give ``database`` (a run database, never the seed) one more account, on one side of
    ``entries`` journal entries (``append_accounts``), dated from an hour after the seeded
    span, half a millisecond apart, so no seeded date range holds them. Returns facts
    about the account and the journal."""
    started = time.perf_counter()
    account = busy_account(spec)
    append_accounts(pg, database, spec, [account], entries,
                    spec.end + datetime.timedelta(hours=1), BUSY_ENTRIES_STEP, rng_offset=12)
    conn = pg.connect(database)
    cursor = conn.cursor()
    try:
        cursor.execute('SELECT count(*), min(journal_id), max(journal_id) FROM posting '
                       'WHERE account_id = %s', (account,))
        postings, first_id, last_id = cursor.fetchone()
        cursor.execute('SELECT (SELECT count(*) FROM posting), '
                       '(SELECT count(*) FROM journal_entry)')
        all_postings, all_entries = cursor.fetchone()
    finally:
        cursor.close()
        conn.close()
    if log is not None:
        log.write(('busy account %d: %d entries loaded into %s\n'
                   % (account, entries, database)).encode())
    return {'account': account, 'postings': postings, 'first_journal_id': first_id,
            'last_journal_id': last_id, 'all_postings': all_postings,
            'all_entries': all_entries, 'posting_share': postings / all_postings,
            'entry_share': postings / all_entries,
            'seconds': round(time.perf_counter() - started, 1)}


# -- the readers of scenario 12's whole histories ---------------------------

READERS = 1000
READER_ENTRIES = 180            # about a default-seed user's history
READER_OFFSET = 100_001         # clear of the busy account and scenario 13's claimants


def first_reader(spec):
    return spec.accounts + READER_OFFSET


def load_readers(pg, database, spec, log=None):
    """Scenario 12's readers: READERS accounts of READER_ENTRIES entries each
    (``append_accounts``), dated from three hours after the seeded span, so
    every whole history it reads is as long whatever ran before it."""
    started = time.perf_counter()
    first = first_reader(spec)
    append_accounts(pg, database, spec, range(first, first + READERS), READER_ENTRIES,
                    spec.end + datetime.timedelta(hours=3), BUSY_ENTRIES_STEP, rng_offset=120)
    if log is not None:
        log.write(('readers %d..%d: %d entries each loaded into %s\n'
                   % (first, first + READERS - 1, READER_ENTRIES, database)).encode())
    return {'first': first, 'count': READERS, 'entries_each': READER_ENTRIES,
            'seconds': round(time.perf_counter() - started, 1)}
