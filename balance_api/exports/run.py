"""Running an export: one snapshot, rows read in chunks, the manifest at the end.

On PostgreSQL the journal's settled id (``balance_api.money.pg_sql.settled_id``)
is read first, outside any transaction, and only ids up to it are read;
then everything (rows and manifest figures) is read in one REPEATABLE READ,
READ ONLY transaction through server-side cursors. On SQLite one read
transaction holds the snapshot and the cursor is read in chunks. Memory
stays bounded by a chunk of rows (plus the manifest's per-account figures).
"""
import contextlib
import hashlib

from ..clock import utc_now
from ..storage import pg
from ..storage.db import is_postgres
from ..web import streaming
from . import formats, pg_sql, signing

FETCH_ROWS = streaming.FETCH_ROWS


@contextlib.contextmanager
def snapshot(db, probe):
    """One read-only snapshot; yields its time (naive UTC). ``probe`` is a
    read that makes SQLite take its snapshot (it does at the first read)."""
    with db.atomic():
        if is_postgres(db):
            moment = pg_sql.begin_snapshot(db)
        else:
            probe()
            moment = utc_now()
        yield moment


class _SqliteCursor:
    def __init__(self, cursor):
        self.cursor = cursor

    def fetchmany(self, rows):
        return self.cursor.fetchmany(rows)

    def close(self):
        self.cursor.close()


def batches(db, query, name='stream'):
    """The raw rows of a peewee ``query``, in lists of at most FETCH_ROWS:
    a server-side cursor on PostgreSQL (named ``name``; several may be open
    at once), an SQLite cursor read in chunks."""
    sql, params = query.sql()
    if is_postgres(db):
        cursor = pg.ServerCursor(db, sql, params, FETCH_ROWS, name=name)
    else:
        cursor = _SqliteCursor(db.execute_sql(sql, params))
    while True:
        batch = cursor.fetchmany(FETCH_ROWS)
        if batch:
            yield batch
        if len(batch) < FETCH_ROWS:
            break
    # Only when read to the end: otherwise the transaction's end closes it.
    cursor.close()


class Tally:
    """What a manifest counts about the rows: their number, first and last
    id, and the sum of the amounts per kind (operation or event type).
    ``verify-export`` recomputes it from a file with the same class."""

    def __init__(self, kinds, zero, render):
        self.rows = 0
        self.first_id = self.last_id = None
        self.sums = {kind: zero for kind in kinds}
        self.render = render

    def add(self, row_id, kind, amount):
        self.rows += 1
        if self.first_id is None:
            self.first_id = row_id
        self.last_id = row_id
        self.sums[kind] = self.sums[kind] + amount

    def extend(self, rows, first_id, last_id):
        """Count ``rows`` more rows, ids ``first_id`` to ``last_id`` (the caller adds
        their sums)."""
        self.rows += rows
        if self.first_id is None:
            self.first_id = first_id
        self.last_id = last_id

    def figures(self):
        return {'rows': self.rows, 'first_id': self.first_id, 'last_id': self.last_id,
                'sums': {kind: self.render(total) for kind, total in self.sums.items()}}


class Export:
    """One export of ``source`` (``journal.JOURNAL`` or ``points.POINTS``) for ``query``.

    ``chunks()`` is a generator: its first item is ``b''``, given once the
    snapshot is open and the first rows are read (so failures up to there
    happen before any byte is sent), then the export's bytes. With
    ``key`` (a private key) the manifest is computed and signed; it is the
    last line of a JSON Lines export, and ``self.manifest`` once the
    generator is done. ``send=False`` hashes the bytes without yielding them.
    """

    def __init__(self, db, source, query, key=None, send=True):
        self.db = db
        self.source = source
        self.query = query
        self.key = key
        self.send = send
        self.manifest = None
        # Called with the number of rows so far after every chunk (the command's progress).
        self.on_chunk = None

    def chunks(self):
        db, source, query = self.db, self.source, self.query
        settled = source.settled_id(db)
        with snapshot(db, source.probe) as moment:
            # On PostgreSQL the server renders each line (``pg_sql.line``).
            rendered = is_postgres(db)
            if rendered:
                rows = batches(db, source.lines(query, settled, query.format))
                tally = source.line_tally(query)
            else:
                rows = batches(db, source.rows(query, settled))
                tally = source.tally(query)
            pending = next(rows, None)
            yield b''
            writer = formats.writer(query.format, source.columns, source.text_columns)
            digest = hashlib.sha256()
            data = writer.header()
            while True:
                if pending is not None:
                    if rendered:
                        source.count_lines(tally, pending)
                        data += ''.join([row[3] for row in pending]).encode('utf-8')
                    else:
                        records = source.records(db, pending)
                        for record in records:
                            source.count(tally, record)
                        data += writer.rows(records)
                digest.update(data)
                if data and self.send:
                    yield data
                streaming.progress()
                if self.on_chunk is not None:
                    self.on_chunk(tally.rows)
                if pending is None:
                    break
                pending, data = next(rows, None), b''
            if self.key is None:
                return
            document = {'export': source.name, 'parameters': query.parameters(source.kind_key),
                        **tally.figures(), **source.figures(db, query, settled),
                        'sha256': digest.hexdigest(), 'snapshot_at': formats.stamp(moment),
                        'settled_id': settled}
        self.manifest = signing.sign(self.key, document)
        if query.format == 'jsonl' and self.send:
            yield formats.manifest_line(self.manifest)


def run_to_end(export):
    """Run ``export`` without sending it (its manifest, a reconciliation)."""
    for _ in export.chunks():
        pass
    return export
