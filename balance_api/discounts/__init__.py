"""Discount codes: brands generate codes in bulk, each user claims one per brand.

No code is ever handed out twice: a code's row holds the user it went to,
a user holds at most one code per brand (a unique index), and a claim
takes an unclaimed code under a row lock (PostgreSQL ``FOR UPDATE SKIP
LOCKED``, so concurrent claims take different codes without waiting on
each other; SQLite's write lock). Every generation and every claim writes
an audit row in the same transaction; ``verify`` checks that codes, claims
and audit rows agree, and the exports publish the audit rows.
"""
