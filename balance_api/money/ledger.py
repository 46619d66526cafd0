"""The money core: users, deposits, withdrawals and transfers.

Every public method runs in one database transaction: the balance change,
its journal entry and its postings commit together or not at all. Rows are
locked in ascending account id, so two opposite transfers cannot deadlock.
Every rule is checked before the first write, so a refused request leaves
nothing behind even inside a caller's larger transaction.

On PostgreSQL deposits, withdrawals and transfers are one call of the
server-side function ``ledger_post`` (migration 0003), which applies the
same rules and the same hash chain as the code here: one round trip
instead of three, the largest cost of a change measured in bench/README.md.
Creating and deleting users is three statements of ``balance_api.money.pg_sql``:
the locking read (or the insert), the reservation of the journal entry's id
and time, and one write of the entry, its postings and the account. SQLite
goes through the models.

An entry's time is read after its accounts are locked (on PostgreSQL from
the database's clock, after its id is taken; on SQLite inside the write
lock), and never earlier than a microsecond after the previous posting of
an account it touches, so every account's postings are in time order.
"""
import contextlib
import datetime
import hashlib
import os
from typing import NamedTuple

import peewee

from ..clock import utc_now
from ..errors import ApiError
from ..storage import sql_json
from ..storage.db import is_postgres, write_transaction
from ..storage.pg import failed_table
from ..web import metrics
from . import errors, pg_sql
from .amounts import ZERO, fits
from .chain import GENESIS_HASH, posting_hash
from .models import EXTERNAL_ACCOUNT_ID, Account, JournalEntry, Posting


# The least step between two postings of one account.
MICROSECOND = datetime.timedelta(microseconds=1)


class Balance(NamedTuple):
    user_id: int
    balance: object  # Decimal


class Contact(NamedTuple):
    user_id: int
    email: object
    msisdn: object


def new_transaction_hash():
    """A 32-hex MD5 transaction hash, unique even for identical requests."""
    return hashlib.md5(os.urandom(16)).hexdigest()


# The journal's operations that move money, as the metrics name them.
_MOVES = {'balance_add': 'deposit', 'balance_sub': 'withdrawal', 'balance_transfer': 'transfer'}


# What ledger_post answers instead of writing, by the API's error code.
_REFUSALS = {error.code: error for error in (
    errors.UserNotFound, errors.InsufficientFunds, errors.BalanceOverflow)}


@contextlib.contextmanager
def _journal_write_failures():
    """A failed write of the journal or postings is a 512. A failed update of
    an account, a lost database and anything not from the database are left
    to the caller."""
    try:
        yield
    except (peewee.OperationalError, peewee.InterfaceError):
        raise
    except peewee.DatabaseError as exc:
        if failed_table(exc) == Account._meta.table_name:
            raise  # the caller's error, as a failed account update would be
        raise errors.JournalWriteFailed(str(exc)) from exc


@contextlib.contextmanager
def _failures_as(error_class):
    """Report a database failure as ``error_class`` (connection loss excepted)."""
    try:
        yield
    except (ApiError, peewee.OperationalError, peewee.InterfaceError):
        # Domain errors are already precise; a lost or locked database is
        # reported as such by the application's handler (503, retryable).
        raise
    except peewee.DatabaseError as exc:
        raise error_class(str(exc)) from exc


class Ledger:
    def __init__(self, db, clock=utc_now, on_user_deleted=None):
        """``on_user_deleted(user_id)`` runs inside the deletion's transaction
        (the keys bound to the user are revoked with it)."""
        self.db = db
        self.clock = clock
        self.on_user_deleted = on_user_deleted

    # -- reads ---------------------------------------------------------

    def balance(self, user_id):
        if is_postgres(self.db):
            row = pg_sql.balance(self.db, user_id)
        else:
            row = (Account.select(Account.id, Account.balance)
                   .where((Account.id == user_id) & Account.deleted_at.is_null())
                   .tuples().first())
        if row is None:
            raise errors.UserNotFound()
        return Balance(*row)

    def balances(self, user_id=None):
        """Every user's balance (or only ``user_id``'s), ordered by id, as a
        lazy query whose one column is ``{"user_id": 2, "balance": "85.10"}``
        (see sql_json)."""
        row = sql_json.json_object([('user_id', sql_json.number(Account.id)),
                                    ('balance', sql_json.amount(self.db, Account.balance))])
        query = (Account.select(row)
                 .where((Account.id != EXTERNAL_ACCOUNT_ID) & Account.deleted_at.is_null())
                 .order_by(Account.id).tuples())
        if user_id is not None:
            query = query.where(Account.id == user_id)
        return query

    # -- changes -------------------------------------------------------

    def create_user(self, user_id, email=None, msisdn=None, key_name=None, restore=False):
        """Create a user with a zero balance; returns ``(Balance, created)``.

        Creating an existing user changes nothing and returns it, when the
        contacts given (None: not given) are its own. A deleted user's id is
        refused unless ``restore``: then its account re-opens with a zero
        balance, its history intact (a ``user_add`` after its ``user_delete``).
        """
        with _failures_as(errors.UserCreateFailed), write_transaction(self.db):
            if not restore:
                inserted = (Account.insert(id=user_id, balance=ZERO, last_hash=GENESIS_HASH,
                                           email=email, msisdn=msisdn, created_at=self.clock())
                            .on_conflict_ignore().as_rowcount().execute())
                if inserted:
                    self._post('user_add', EXTERNAL_ACCOUNT_ID, user_id, ZERO, None,
                               [(user_id, GENESIS_HASH, ZERO, ZERO)], self._reserve([]),
                               key_name=key_name)
                    return Balance(user_id, ZERO), True

            accounts = self._lock([user_id])
            account = accounts.get(user_id)
            if account is None:
                if restore:
                    raise errors.UserNotFound()
                # The insert was ignored for a taken email or msisdn.
                raise errors.ContactTaken()
            if account.deleted_at is None:
                self._check_same_contact(user_id, email, msisdn)
                return Balance(user_id, account.balance), False
            if not restore:
                raise errors.UserWasDeleted()
            try:
                with self.db.atomic():
                    Account.update(deleted_at=None, email=email, msisdn=msisdn).where(
                        Account.id == user_id).execute()
            except peewee.IntegrityError as exc:
                raise errors.ContactTaken() from exc
            self._post('user_add', EXTERNAL_ACCOUNT_ID, user_id, ZERO, None,
                       [(user_id, account.last_hash, ZERO, account.balance)],
                       self._reserve([account]), key_name=key_name)
            return Balance(user_id, account.balance), True

    def set_contact(self, user_id, **contact):
        """Set a user's ``email`` and/or ``msisdn`` (None clears one); returns
        ``Contact``. Contacts are not money: no journal entry is written."""
        with write_transaction(self.db):
            self._existing(self._lock([user_id]), user_id)
            if contact:
                try:
                    # A savepoint: PostgreSQL would otherwise fail the whole transaction.
                    with self.db.atomic():
                        Account.update(**contact).where(Account.id == user_id).execute()
                except peewee.IntegrityError as exc:
                    raise errors.ContactTaken() from exc
            email, msisdn = (Account.select(Account.email, Account.msisdn)
                             .where(Account.id == user_id).tuples().get())
            return Contact(user_id, email, msisdn)

    def delete_user(self, user_id, key_name=None):
        """Delete a user whose balance is zero; its history stays."""
        with _failures_as(errors.UserDeleteFailed), write_transaction(self.db):
            account = self._existing(self._lock([user_id]), user_id)
            if account.balance != ZERO:
                raise errors.NonZeroBalance()
            reserved = self._reserve([account])
            self._post('user_delete', user_id, EXTERNAL_ACCOUNT_ID, ZERO, None,
                       [(user_id, account.last_hash, ZERO, ZERO)], reserved,
                       extra={'deleted_at': reserved[1], 'email': None, 'msisdn': None},
                       key_name=key_name)
            if self.on_user_deleted is not None:
                self.on_user_deleted(user_id)

    def change_balance(self, user_id, operation, amount, description=None, key_name=None):
        """Add money to (``add``) or take it from (``sub``) one user."""
        if operation not in ('add', 'sub'):
            raise errors.OperationMismatch()
        if is_postgres(self.db):
            _, balance = self._post_on_server('balance_' + operation, EXTERNAL_ACCOUNT_ID,
                                              user_id, amount, description, key_name)
            return Balance(user_id, balance)
        with _failures_as(errors.BalanceChangeFailed), write_transaction(self.db):
            account = self._existing(self._lock([user_id]), user_id)
            delta = amount if operation == 'add' else -amount
            after = self._checked(account.balance + delta)
            self._post('balance_' + operation, EXTERNAL_ACCOUNT_ID, user_id, amount, description,
                       [(user_id, account.last_hash, delta, after),
                        (EXTERNAL_ACCOUNT_ID, None, -delta, None)], self._reserve([account]),
                       key_name=key_name)
            return Balance(user_id, after)

    def transfer(self, sender_id, receiver_id, amount, description=None, key_name=None):
        """Move money between two users; returns both balances ordered by id."""
        if sender_id == receiver_id:
            raise errors.SameSenderReceiver()
        if is_postgres(self.db):
            sender_after, receiver_after = self._post_on_server(
                'balance_transfer', sender_id, receiver_id, amount, description, key_name)
            return sorted([Balance(sender_id, sender_after), Balance(receiver_id, receiver_after)])
        with _failures_as(errors.BalanceChangeFailed), write_transaction(self.db):
            accounts = self._lock([sender_id, receiver_id])
            sender = self._existing(accounts, sender_id)
            receiver = self._existing(accounts, receiver_id)
            sender_after = self._checked(sender.balance - amount)
            receiver_after = self._checked(receiver.balance + amount)
            self._post('balance_transfer', sender_id, receiver_id, amount, description,
                       [(sender_id, sender.last_hash, -amount, sender_after),
                        (receiver_id, receiver.last_hash, amount, receiver_after)],
                       self._reserve([sender, receiver]), key_name=key_name)
            return sorted([Balance(sender_id, sender_after), Balance(receiver_id, receiver_after)])

    # -- internals -----------------------------------------------------

    def _post_on_server(self, operation, sender_id, receiver_id, amount, description, key_name):
        """A deposit, withdrawal or transfer as one statement (PostgreSQL).

        Alone it is its own transaction; inside a caller's (an idempotency
        key's) it joins it. Returns ``(sender balance, receiver balance)``.
        """
        # _failures_as(BalanceChangeFailed) around _journal_write_failures(),
        # unrolled: this is the hot path of every change on PostgreSQL.
        try:
            refusal, sender_after, receiver_after = pg_sql.post(
                self.db, operation, sender_id, receiver_id, amount,
                description or new_transaction_hash(), key_name)
        except (peewee.OperationalError, peewee.InterfaceError):
            raise
        except peewee.DatabaseError as exc:
            if failed_table(exc) == Account._meta.table_name:
                raise errors.BalanceChangeFailed(str(exc)) from exc
            raise errors.JournalWriteFailed(str(exc)) from exc
        if refusal:
            raise _REFUSALS[refusal]()
        metrics.after_commit(self.db, metrics.journal_entry_written, operation,
                             _MOVES.get(operation), amount)
        return sender_after, receiver_after

    def _lock(self, user_ids):
        """Read and lock the given accounts, in ascending id order; returns
        them by id. SQLite needs no row locks: write_transaction holds the
        write lock."""
        if is_postgres(self.db):
            return pg_sql.lock_accounts(self.db, user_ids)
        query = (Account.select(Account.id, Account.balance, Account.last_hash,
                                Account.deleted_at, Account.last_posted_at)
                 .where(Account.id.in_(sorted(set(user_ids))))
                 .order_by(Account.id))
        return {account.id: account for account in query}

    def _reserve(self, accounts):
        """``(journal id, time)`` of the entry about to be written, once the
        ``accounts`` it touches are locked.

        On PostgreSQL the id comes from the database with its clock
        (``pg_sql.reserve_entry``), so the postings' hashes are known before
        anything is written and the whole change is one more statement.
        SQLite numbers entries as they are inserted: its id is None, and its
        time is the clock's, read under the write lock.
        """
        if is_postgres(self.db):
            journal_id, now = pg_sql.reserve_entry(self.db)
        else:
            journal_id, now = None, self.clock()
        for account in accounts:
            if account.last_posted_at is not None:
                now = max(now, account.last_posted_at + MICROSECOND)
        return journal_id, now

    @staticmethod
    def _check_same_contact(user_id, email, msisdn):
        """A contact given that is not the user's own: 542, nothing written (the
        row is locked, so the comparison holds until the commit)."""
        stored_email, stored_msisdn = (Account.select(Account.email, Account.msisdn)
                                       .where(Account.id == user_id).tuples().get())
        if (email is not None and email != stored_email
                or msisdn is not None and msisdn != stored_msisdn):
            raise errors.UserDetailsDiffer()

    @staticmethod
    def _existing(accounts, user_id):
        account = accounts.get(user_id)
        if account is None or account.deleted_at is not None:
            raise errors.UserNotFound()
        return account

    @staticmethod
    def _checked(balance):
        if balance < ZERO:
            raise errors.InsufficientFunds()
        if not fits(balance):
            raise errors.BalanceOverflow()
        return balance

    def _post(self, operation, sender_id, receiver_id, amount, description, legs, reserved,
              extra=None, key_name=None):
        """Write one journal entry, its postings and the new account states.

        ``legs`` are ``(account_id, previous_hash, signed_amount,
        balance_after)``; the external account's leg has neither a previous
        hash nor a balance, and its row is never touched. ``reserved`` is
        ``_reserve``'s ``(journal id, time)``: with an id (PostgreSQL) all of
        it is one statement; otherwise the entry is inserted first to learn
        its id. A failure to write the entry or a posting is a 512; a failure
        to update an account is the caller's error.
        """
        journal_id, now = reserved
        description = description or new_transaction_hash()
        one_statement = journal_id is not None
        if not one_statement:
            with _failures_as(errors.JournalWriteFailed):
                journal_id = JournalEntry.insert(
                    created_at=now, operation=operation, sender_id=sender_id,
                    receiver_id=receiver_id, amount=amount,
                    transaction_description=description, key_name=key_name).execute()
        postings, updates = [], []
        for account_id, previous_hash, delta, after in legs:
            digest = posting_hash(
                previous_hash or '', account_id=account_id, amount=delta,
                balance_after=after, journal_id=journal_id, created_at=now,
                operation=operation, sender_id=sender_id, receiver_id=receiver_id,
                journal_amount=amount, description=description)
            postings.append((journal_id, account_id, delta, after, now, digest))
            if account_id != EXTERNAL_ACCOUNT_ID:
                updates.append((account_id, after, digest))

        if one_statement:
            entry = (journal_id, now, operation, sender_id, receiver_id, amount, description,
                     key_name)
            with _journal_write_failures():
                pg_sql.write_entry(self.db, entry, postings, updates, extra)
            metrics.after_commit(self.db, metrics.journal_entry_written, operation,
                                 _MOVES.get(operation), amount)
            return journal_id

        with _failures_as(errors.JournalWriteFailed):
            Posting.insert_many([
                {'journal': journal, 'account': account_id, 'amount': delta,
                 'balance_after': after, 'created_at': moment, 'hash': digest}
                for journal, account_id, delta, after, moment, digest in postings
            ]).as_rowcount().execute()
        for account_id, after, digest in updates:
            changes = {'balance': after, 'last_hash': digest, 'last_posted_at': now,
                       **(extra or {})}
            Account.update(**changes).where(Account.id == account_id).execute()
        metrics.after_commit(self.db, metrics.journal_entry_written, operation,
                             _MOVES.get(operation), amount)
        return journal_id
