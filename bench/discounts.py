"""Scenario 13's data: claimants and brands of codes in the run database, and the
ceiling's claim script.

- Claimants are users of the run database with nothing but their opening entry
  (``user_add``), the hash chain exact as in ``seed``, each claiming at most
  once per brand: a claim run takes a brand of its own, so its claims are all
  new ones.
- A brand of codes is a brand row, its generation's audit row and the codes,
  drawn as the service draws them and written with one COPY: the ceiling of
  generation, and how claim runs get their codes without asking the service.
- The claim ceiling is pgbench running the service's own claim statement
  (``balance_api.discounts.pg_sql``), read from the package when the run
  starts, so it is always the statement the service runs.
"""
import datetime
import io
import itertools
import re
import time

from balance_api.discounts import codes as discount_codes
from balance_api.discounts import pg_sql as discount_sql

from . import seed as seeding

CLAIMANTS = 50_000              # users made for the claim runs, more than any run claims
CLAIMANT_OFFSET = 2001          # after the hot account, scenario 9's members, the busy account
BRAND_BASE = 13_000_000         # the scenario's brands, one per sample, from here up
GENERATED_CODES = 100_000       # codes per generation request (--quick: QUICK_GENERATED_CODES)
QUICK_GENERATED_CODES = 10_000
PGBENCH_CODES_PER_SECOND = 20_000   # codes given to each pgbench run, per second it runs
PGBENCH_MIN_CODES = 50_000
# pgbench's claimants: random ids no user has, so every claim is a new one
# (a repeat, one in millions, would be a read).
PGBENCH_FIRST_USER = 10 ** 12
PGBENCH_LAST_USER = 2 * 10 ** 12 - 1
PGBENCH_KEY_NAME = 'pgbench'


def first_claimant(spec):
    return spec.accounts + CLAIMANT_OFFSET


def load_claimants(pg, database, spec, count, log=None):
    """Make ``count`` users first_claimant(spec).. in ``database`` (a run database),
    each with its ``user_add`` entry only, dated now; returns facts about them."""
    started = time.perf_counter()
    first = first_claimant(spec)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    seeding.append_accounts(pg, database, spec, range(first, first + count), 1, now,
                            datetime.timedelta(microseconds=10), rng_offset=13)
    if log is not None:
        log.write(('claimants %d..%d loaded into %s\n'
                   % (first, first + count - 1, database)).encode())
    return {'first': first, 'last': first + count - 1, 'count': count,
            'seconds': round(time.perf_counter() - started, 1)}


class Brands:
    """The scenario's brands: a new id for every sample, loaded on demand."""

    def __init__(self, pg, database):
        self.pg = pg
        self.database = database
        self._ids = itertools.count(BRAND_BASE)

    def new_id(self):
        return next(self._ids)

    def load(self, count, brand_id=None):
        """A brand (a new one unless ``brand_id``) with ``count`` codes drawn as the
        service draws them, written with one COPY in one transaction.

        Returns (brand id, seconds of the COPY and its commit): the drawing is
        not timed, nor the brand's two rows.
        """
        brand_id = self.new_id() if brand_id is None else brand_id
        drawn = discount_codes.draw(count)
        conn = self.pg.connect(self.database, autocommit=False)
        cursor = conn.cursor()
        try:
            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            cursor.execute('INSERT INTO discount_brand (id, created_at) VALUES (%s, %s)',
                           (brand_id, now))
            cursor.execute(
                "INSERT INTO discount_audit (created_at, action, brand_id, codes, key_name) "
                "VALUES (%s, 'generate', %s, %s, %s) RETURNING id",
                (now, brand_id, count, PGBENCH_KEY_NAME))
            generation = cursor.fetchone()[0]
            conn.commit()
            text = ''.join('%d\t%s\t%d\n' % (brand_id, code, generation) for code in drawn)
            started = time.perf_counter()
            cursor.copy_expert('COPY discount_code (brand_id, code, generation_id) FROM STDIN',
                               io.StringIO(text), size=seeding.COPY_BUFFER)
            conn.commit()
            seconds = time.perf_counter() - started
        finally:
            cursor.close()
            conn.close()
        return brand_id, seconds

    def counts(self, brand_id):
        """(codes of the brand, claimed codes, claim audit rows, distinct claimants)."""
        row = self.pg.scalar(
            "SELECT (SELECT count(*) FROM discount_code WHERE brand_id = {b}) || ' ' || "
            "(SELECT count(*) FROM discount_code WHERE brand_id = {b} AND user_id IS NOT NULL)"
            " || ' ' || (SELECT count(*) FROM discount_audit WHERE brand_id = {b} "
            "AND action = 'claim') || ' ' || (SELECT count(DISTINCT user_id) FROM "
            "discount_code WHERE brand_id = {b})".format(b=int(brand_id)), dbname=self.database)
        return tuple(int(part) for part in str(row).split())


def write_claim_script(path):
    """The pgbench script of the claim ceiling: the service's claim statement, its
    parameters given as pgbench variables (in the statement's order)."""
    statement = discount_sql._CLAIM
    values = iter((':brand', ':user', ':brand', ':brand', ':user', ':key_name', ':user',
                   ':brand'))
    text = re.sub('%s', lambda match: next(values), statement)
    if next(values, None) is not None:
        raise RuntimeError('the claim statement takes fewer parameters than the script gives')
    # pgbench reads one statement per line unless it ends with a semicolon.
    script = ('-- The service\'s claim statement (balance_api/discounts/pg_sql.py), '
              'written out when the run starts.\n'
              '\\set user random(%d, %d)\n%s;\n'
              % (PGBENCH_FIRST_USER, PGBENCH_LAST_USER, ' '.join(text.split())))
    with open(path, 'w') as handle:
        handle.write(script)
    return path
