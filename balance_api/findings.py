"""What the ledgers' checks share: findings kept up to a limit, progress, and
reading a whole table without holding it in memory."""
from playhouse.postgres_ext import ServerSide

from .storage.db import is_postgres

# Rows fetched per round trip when a check reads a whole table.
FETCH_ROWS = 5000


class Findings:
    """Collects problems as ``make(kind, detail, **rows)``, listing at most
    ``limit`` of them and counting the rest."""

    def __init__(self, make, limit):
        self.make = make
        self.limit = limit
        self.listed = []
        self.unlisted = 0

    def __call__(self, kind, detail, **rows):
        if len(self.listed) < self.limit:
            self.listed.append(self.make(kind, detail, **rows))
        else:
            self.unlisted += 1


class Progress:
    """Calls ``callback(kind, count)`` every ``every`` rows (when there is one)."""

    def __init__(self, callback, every):
        self.callback = callback
        self.every = every

    def __call__(self, kind, count):
        if self.callback is not None and count % self.every == 0:
            self.callback(kind, count)


def stream(db, query):
    """An iterator over ``query``'s rows: a server-side cursor on PostgreSQL."""
    return iter(ServerSide(query, array_size=FETCH_ROWS) if is_postgres(db)
                else query.iterator())
