"""Running the scenarios: databases, the service, the measurements and their repeats.

A measurement (one wrk run, one pgbench run, one stream...) is taken once per
repeat and shared by every scenario that needs it, so a scenario's ceiling is
always measured in the same run as the scenario itself.
"""
import calendar
import collections
import http.client
import json
import os
import random
import shutil
import threading
import time
import urllib.request
from typing import Callable, NamedTuple, Optional, Tuple

from . import discounts, points_seed
from . import seed as seeding
from . import wrk
from .pg import Postgres
from .service import RssSampler, Service

HISTORY_SPAN_DAYS = 2
HISTORY_PAGE = 10             # rows per page of scenario 12
RSS_LIMIT_MB = 150.0          # decimal megabytes
STREAM_ROW_MARK = b'{"id": '  # how every streamed history row starts

POINTS_ADD_MAX = 1000         # points per grant of scenario 7
POINTS_SPEND_MAX = 10         # points per spend of scenario 7
OVERSPEND_CLIENTS = 40        # concurrent spends of the overspend check
OVERSPEND_POINTS = 5          # points per spend
OVERSPEND_GRANTS = (('DANNON', 20), ('UNILEVER', 15), ('MILLER COORS', 20))
OVERSPEND_COVERED = sum(points for _, points in OVERSPEND_GRANTS) // OVERSPEND_POINTS   # 11
# Points spends per second of the fastest of two public implementations of the
# points exercise, as measured on this machine class and stated in the issue.
PUBLIC_POINTS_SPEND_RPS = 199.0


def seed_range_sql(spec):
    """The journal rows of the seeded span, as history returns them (same columns, same order)."""
    return ("SELECT id, created_at, receiver_id, sum, operation, transaction_description, "
            "sender_id FROM journal_entry WHERE created_at >= '%s' AND created_at < '%s' "
            "ORDER BY id" % (spec.start.date(), spec.end.date()))


def export_range_sql(spec):
    """The rows of GET /export over the seeded span, as the journal stores them: each
    entry with its sender's and its receiver's posting (none on the external account
    for user_add and user_delete: outer joins), the export's columns in its order."""
    return ("SELECT e.id, e.created_at, e.operation, e.sender_id, e.receiver_id, e.sum, "
            "e.transaction_description, e.key_name, s.balance_after, r.balance_after, "
            "s.hash, r.hash FROM journal_entry e "
            "LEFT JOIN posting s ON s.journal_id = e.id AND s.account_id = e.sender_id "
            "LEFT JOIN posting r ON r.journal_id = e.id AND r.account_id = e.receiver_id "
            "WHERE e.created_at >= '%s' AND e.created_at < '%s' ORDER BY e.id"
            % (spec.start.date(), spec.end.date()))


def export_path(spec, format):
    """The journal export of every day of the seeded span, in ``format``."""
    return '/export?date-start=%s&date-end=%s&format=%s' % (spec.first_day, spec.last_day,
                                                           format)


def stream_path(spec):
    """History over every day of the seeded span: every seeded row."""
    return '/history?date-start=%s&date-end=%s' % (spec.first_day, spec.last_day)


class Figure(NamedTuple):
    """Where a number comes from: a measurement and a function of its sample."""
    measurement: str
    pick: Callable[[dict], float]
    unit: str


class Criterion(NamedTuple):
    key: str
    label: str
    service: Figure
    ceiling: Optional[Figure]
    op: str                       # '>=' or '<='
    target: float
    fixed_ceiling: Optional[float] = None   # a limit instead of a measured ceiling
    fixed_ceiling_text: Optional[str] = None
    # More conditions on the service's samples: samples -> ({name: value}, all held).
    checks: Optional[Callable[[list], Tuple[dict, bool]]] = None


class Scenario(NamedTuple):
    number: int
    key: str
    title: str
    description: str
    warmup: Optional[str]          # the measurement to warm the service up with
    criteria: Tuple[Criterion, ...]
    writes: bool = False
    require_clean: bool = False    # zero errors and zero deadlocks are part of the target
    points: bool = False           # needs the points seed (bench/points_seed.py)
    # Services to compare, as (prefix, extra environment): measurement
    # '<prefix>_<name>' is <name> taken against a service of its own started with
    # that environment. Empty: one service, the usual one, for every measurement.
    services: Tuple[Tuple[str, dict], ...] = ()
    # Start the service with SIGNING_KEY_FILE: a key made in the run's log directory.
    signing_key: bool = False


def service_of(scenario, measurement):
    """(prefix, environment, measurement as _measure knows it) of a multi-service scenario."""
    for prefix, env in scenario.services:
        if measurement.startswith(prefix + '_'):
            return prefix, env, measurement[len(prefix) + 1:]
    raise KeyError('scenario %d compares services %s: %r names none of them' % (
        scenario.number, ', '.join(p for p, _ in scenario.services), measurement))


def _ok_rps(sample):
    return sample['ok_rps']


def _p50_ms(sample):
    return sample['latency_us']['p50'] / 1000.0


def _p99_ms(sample):
    return sample['latency_us']['p99'] / 1000.0


def _overspend_checks(samples):
    """The other half of the overspend target: every other spend refused, nothing left."""
    refused = [s['refused'] for s in samples]
    balances = [s['final_balance'] for s in samples]
    others = [sum(s['other'].values()) for s in samples]
    drawn_right = all(s['points_drawn'] == s['ok'] * OVERSPEND_POINTS for s in samples)
    held = all(r == OVERSPEND_CLIENTS - OVERSPEND_COVERED for r in refused) and all(
        b == 0 for b in balances) and not any(others) and drawn_right
    checks = {'409s': '/'.join(str(r) for r in refused),
              'final balance': '/'.join(str(b) for b in balances)}
    if not drawn_right:
        checks['points drawn'] = '/'.join(str(s['points_drawn']) for s in samples)
    if any(others):
        checks['other answers'] = '/'.join(str(o) for o in others)
    return checks, held


PGBENCH_TPS = Figure('pgbench', lambda s: s['tps'], 'tps')
LEDGER_POST_TPS = Figure('ledger_post_pgbench', lambda s: s['tps'], 'tps')
# The service's own transfer statement, run by pgbench on the run database.
LEDGER_POST_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pgbench',
                                  'ledger_post_transfer.sql')
ADD_SUB_RPS = Figure('add_sub', _ok_rps, 'req/s')

EXPORT_FORMATS = ('csv', 'jsonl')
EXPORT_KEY_FILE = 'export-signing-key.pem'   # in the run's log directory


def _codes_per_s(sample):
    return sample['codes_per_s']


def _claim_checks(samples):
    """The other half of the claim target: every answer a new claim, each with its
    audit row, no code and no claimant twice."""
    answered = [s['ok_requests'] for s in samples]
    claimed = [s['claimed'] for s in samples]
    # A request wrk stopped waiting for may still have claimed: at most one per connection.
    counted = all(s['ok_requests'] <= s['claimed'] <= s['ok_requests'] + s['connections']
                  for s in samples)
    audited = all(s['claim_audit_rows'] == s['claimed'] == s['claimants'] for s in samples)
    checks = {'answers/claims': '/'.join('%d/%d' % pair for pair in zip(answered, claimed))}
    if not audited:
        checks['claims/audit rows/claimants'] = '/'.join(
            '%d/%d/%d' % (s['claimed'], s['claim_audit_rows'], s['claimants']) for s in samples)
    return checks, counted and audited


def _export_pick(format, field):
    return lambda sample: sample[format][field]


# Scenario 10: the same requests with keys and with keys off.
KEYS_ON = ('auth', {'BALANCE_API_AUTH': 'on'})
KEYS_OFF = ('noauth', {'BALANCE_API_AUTH': 'off'})
KEYS_PROBE_PATH = '/balance/1'   # asked once without a key of every service scenario 10 starts

SCENARIOS = (
    Scenario(1, 'transfers', 'Random transfers',
             'PUT /transfer between two random users of the seeded accounts, form-encoded; '
             'ceilings: pgbench built-in tpcb-like on the same server with as many clients, '
             'and pgbench running the service\'s own transfer statement (ledger_post, '
             'bench/pgbench/ledger_post_transfer.sql) on the run database.',
             'transfer',
             (Criterion('1', 'random transfers', Figure('transfer', _ok_rps, 'req/s'), PGBENCH_TPS,
                        '>=', 0.5),
              Criterion('1-ledger-post', 'random transfers vs ledger_post',
                        Figure('transfer', _ok_rps, 'req/s'), LEDGER_POST_TPS, '>=', 0.45)),
             writes=True),
    Scenario(2, 'hot-account', 'One hot account',
             'PUT /transfer where every transfer draws from the same sender (a huge balance) '
             'to a random user; ceiling: scenario 1. Also needs zero errors (non-2xx, socket '
             'errors) and zero deadlocks (pg_stat_database).',
             'hot_transfer',
             (Criterion('2', 'hot-account transfers', Figure('hot_transfer', _ok_rps, 'req/s'),
                        Figure('transfer', _ok_rps, 'req/s'), '>=', 0.3),),
             writes=True, require_clean=True),
    Scenario(3, 'add-sub', 'Deposits and withdrawals',
             'PUT /balance/{uid} with operation=add or sub (half each) on a random user; '
             'ceiling: pgbench tpcb-like.',
             'add_sub',
             (Criterion('3', 'add/sub', ADD_SUB_RPS, PGBENCH_TPS, '>=', 0.6),),
             writes=True),
    Scenario(4, 'balance', 'Balance reads',
             'GET /balance/{uid} of a random user; ceiling: GET /health (no database) '
             'through the same server.',
             'balance_get',
             (Criterion('4', 'GET /balance/{uid}', Figure('balance_get', _ok_rps, 'req/s'),
                        Figure('health', _ok_rps, 'req/s'), '>=', 0.6),)),
    Scenario(5, 'history', 'History by user and date range',
             'GET /history/uid=U&date-start=D&date-end=D+1 (2 days) for a random user and '
             'day of the seeded span (one year per {:,} journal rows: a bigger journal is a '
             'longer one, not a denser one); latency compared with GET /balance/{{uid}} under '
             'the same load.'.format(seeding.ROWS_PER_YEAR),
             'history',
             (Criterion('5-p50', 'history p50 latency', Figure('history', _p50_ms, 'ms'),
                        Figure('balance_get', _p50_ms, 'ms'), '<=', 1.5),
              Criterion('5-p99', 'history p99 latency', Figure('history', _p99_ms, 'ms'),
                        Figure('balance_get', _p99_ms, 'ms'), '<=', 3.0))),
    Scenario(6, 'stream', 'Streaming the whole journal',
             'GET /history over the seeded span (every seeded row), read to the end by one '
             'client; ceiling: psql COPY (SELECT the same rows) TO STDOUT. The workers\' '
             'peak RSS (VmRSS sampled every 20 ms and VmHWM) must stay under 150 MB.',
             'copy',
             (Criterion('6-rows', 'stream rows/s', Figure('stream', lambda s: s['rows_per_s'],
                                                             'rows/s'),
                        Figure('copy', lambda s: s['rows_per_s'], 'rows/s'), '>=', 0.3),
              Criterion('6-rss', 'stream worker peak RSS',
                        Figure('stream', lambda s: s['peak_rss_mb'], 'MB'), None, '<=', 1.0,
                        fixed_ceiling=RSS_LIMIT_MB, fixed_ceiling_text='150 MB limit'))),
    Scenario(7, 'points', 'Points grants and spends',
             'POST /points/{{uid}}/add (JSON, a random payer of {payers}, 1 to {add:,} points) '
             'and POST /points/{{uid}}/spend (1 to {spend} points) on a random member of the '
             'first {members:,} users, each seeded with {big:,} points per payer; ceiling: '
             'scenario 3 (PUT /balance/{{uid}} add/sub). Also needs zero errors and zero '
             'deadlocks, and compares the spends with {public:.0f} req/s, the fastest of two '
             'public implementations of the points exercise (a fixed figure, not re-measured '
             'here).'.format(payers=len(points_seed.PAYERS), add=POINTS_ADD_MAX,
                             spend=POINTS_SPEND_MAX, members=points_seed.SPEND_MEMBERS,
                             big=points_seed.BIG_GRANT, public=PUBLIC_POINTS_SPEND_RPS),
             'points_spend',
             (Criterion('7-add', 'points add', Figure('points_add', _ok_rps, 'req/s'),
                        ADD_SUB_RPS, '>=', 0.7),
              Criterion('7-spend', 'points spend', Figure('points_spend', _ok_rps, 'req/s'),
                        ADD_SUB_RPS, '>=', 0.7),
              Criterion('7-public', 'points spend vs public implementations',
                        Figure('points_spend', _ok_rps, 'req/s'), None, '>=', 10.0,
                        fixed_ceiling=PUBLIC_POINTS_SPEND_RPS,
                        fixed_ceiling_text='%.0f req/s (fixed)' % PUBLIC_POINTS_SPEND_RPS)),
             writes=True, require_clean=True, points=True),
    Scenario(8, 'points-depth', 'Spending with a long history',
             'POST /points/{{uid}}/spend of 1 point, every request from the same member: one '
             'with {grants:,} grants of which all but the newest {unspent} were spent, against '
             'one with {unspent} grants and no spend; p50 latency. Also needs zero errors and '
             'zero deadlocks.'.format(grants=points_seed.DEPTH_GRANTS,
                                      unspent=points_seed.DEPTH_UNSPENT),
             'points_spend_deep',
             (Criterion('8', 'deep-member spend p50', Figure('points_spend_deep', _p50_ms, 'ms'),
                        Figure('points_spend_shallow', _p50_ms, 'ms'), '<=', 1.5),),
             writes=True, require_clean=True, points=True),
    Scenario(9, 'points-overspend', 'Concurrent overspend',
             '{clients} concurrent POST /points/{{uid}}/spend of {points} points (threads, one '
             'connection each, released together) on a new member whose {payers} grants cover '
             'exactly {covered} of them: {covered} must get 200, {refused} 409 (605), and the '
             'balance must end at 0.'.format(
                 clients=OVERSPEND_CLIENTS, points=OVERSPEND_POINTS,
                 payers=len(OVERSPEND_GRANTS), covered=OVERSPEND_COVERED,
                 refused=OVERSPEND_CLIENTS - OVERSPEND_COVERED),
             None,
             (Criterion('9', 'concurrent overspend: spends served',
                        Figure('overspend', lambda s: s['ok'], 'spends'), None, '==', 1.0,
                        fixed_ceiling=float(OVERSPEND_COVERED),
                        fixed_ceiling_text='%d (what the balance covers)' % OVERSPEND_COVERED,
                        checks=_overspend_checks),),
             writes=True),
    Scenario(10, 'auth', 'What keys cost',
             'GET /balance/{uid} and PUT /transfer as in scenarios 4 and 1, every request '
             'with the admin key, against the same requests without a key to a service '
             'started with BALANCE_API_AUTH=off on the same run database. One service runs '
             'at a time: in each run the one with keys takes both figures, then the one '
             'without (the other way round in every other run), each freshly started and '
             'warmed up. Also needs zero errors with keys (a non-2xx would mean the key was '
             'not sent or not accepted) and zero deadlocks.',
             None,
             (Criterion('10-balance', 'GET /balance/{uid} with keys',
                        Figure('auth_balance_get', _ok_rps, 'req/s'),
                        Figure('noauth_balance_get', _ok_rps, 'req/s'), '>=', 0.9),
              Criterion('10-transfer', 'PUT /transfer with keys',
                        Figure('auth_transfer', _ok_rps, 'req/s'),
                        Figure('noauth_transfer', _ok_rps, 'req/s'), '>=', 0.9)),
             writes=True, require_clean=True, services=(KEYS_ON, KEYS_OFF)),
    Scenario(11, 'export', 'Exporting the journal',
             'GET /export over the seeded span (every seeded row, one per journal entry with '
             'both postings\' balances and hashes), read to the end by one client, as CSV and '
             'then as JSON Lines (its last line the signed manifest); each answer is checked: '
             'status 200, as many rows as the span holds, and the manifest\'s rows too. '
             'Ceiling: psql COPY (SELECT the same rows and columns: each entry joined with its '
             'sender\'s and its receiver\'s posting) TO STDOUT. The workers\' peak RSS (VmRSS '
             'sampled every 20 ms and VmHWM, over both exports) must stay under 150 MB. The '
             'service runs with SIGNING_KEY_FILE, a key made in the run\'s log directory.',
             'export_copy',
             (Criterion('11-csv', 'export rows/s (CSV)',
                        Figure('export', _export_pick('csv', 'rows_per_s'), 'rows/s'),
                        Figure('export_copy', lambda s: s['rows_per_s'], 'rows/s'), '>=', 0.3),
              Criterion('11-jsonl', 'export rows/s (JSON Lines)',
                        Figure('export', _export_pick('jsonl', 'rows_per_s'), 'rows/s'),
                        Figure('export_copy', lambda s: s['rows_per_s'], 'rows/s'), '>=', 0.3),
              Criterion('11-rss', 'export worker peak RSS',
                        Figure('export', lambda s: s['peak_rss_mb'], 'MB'), None, '<=', 1.0,
                        fixed_ceiling=RSS_LIMIT_MB, fixed_ceiling_text='150 MB limit')),
             signing_key=True),
    Scenario(12, 'history-uid', 'History by user: pages, whole histories, a busy account',
             'GET /history?uid=U&limit=10 (the first page) of a random user and GET '
             '/history?uid=R (the whole history) of a random reader ({readers:,} accounts of '
             '{entries} entries each, loaded for it), against GET /balance/{{uid}} (req/s); '
             'and a page of 10 '
             'after a random id of the busy account (GET /history?uid=B&after_id=X&limit=10, X '
             'within its journal ids) against the same of a random user (X within the seeded '
             'ids), p50 latency. The busy account and the readers are loaded into the run '
             'database when the scenario starts (after every other scenario that reads the '
             'journal, so no other figure sees them): the busy account on one side of as '
             'many entries as the journal then holds, so of half of all entries. Also needs '
             'zero errors (every answer 200).'.format(readers=seeding.READERS,
                                                      entries=seeding.READER_ENTRIES),
             'history_page',
             (Criterion('12-page', 'history page of 10 by uid',
                        Figure('history_page', _ok_rps, 'req/s'),
                        Figure('balance_get', _ok_rps, 'req/s'), '>=', 0.6),
              Criterion('12-whole', 'whole history by uid',
                        Figure('history_whole', _ok_rps, 'req/s'),
                        Figure('balance_get', _ok_rps, 'req/s'), '>=', 0.3),
              Criterion('12-busy', 'busy account page p50 latency',
                        Figure('history_busy_page', _p50_ms, 'ms'),
                        Figure('history_user_page', _p50_ms, 'ms'), '<=', 3.0)),
             require_clean=True),
    Scenario(13, 'discounts', 'Discount codes: generation and claims',
             'POST /discounts/api/v1.0/generate of {codes:,} codes for a new brand (JSON, '
             'one request, timed to its answer; the brand must then hold that many codes) '
             'against COPY of as many codes, drawn beforehand as the service draws them, '
             'into the same table for a brand of its own (codes/s). Claims: GET '
             '/discounts/{{brand}}/code?user_id=U (the admin key names the user), every '
             'request a user not asked before, from a brand of its own per run with a code '
             'for each of {claimants:,} users made for it, against pgbench running the '
             'service\'s own claim statement (balance_api/discounts/pg_sql.py) on the run '
             'database with as many clients. Every answer must be a new claim with its '
             'audit row; also needs zero errors and zero deadlocks.'.format(
                 codes=discounts.GENERATED_CODES, claimants=discounts.CLAIMANTS),
             'discount_claim',
             (Criterion('13-generate', 'discount code generation',
                        Figure('discount_generate', _codes_per_s, 'codes/s'),
                        Figure('discount_copy', _codes_per_s, 'codes/s'), '>=', 0.5),
              Criterion('13-claim', 'discount claims',
                        Figure('discount_claim', _ok_rps, 'req/s'),
                        Figure('discount_claim_pgbench', lambda s: s['tps'], 'tps'), '>=',
                        0.45, checks=_claim_checks)),
             writes=True, require_clean=True),
)


def select_scenarios(text):
    """'1,2,history' -> scenarios in their usual order."""
    if not text or text == 'all':
        return list(SCENARIOS)
    wanted = set()
    for item in text.replace(' ', '').split(','):
        if not item:
            continue
        match = [s for s in SCENARIOS if item in (str(s.number), s.key)]
        if not match:
            raise ValueError('unknown scenario %r (use 1-%d or %s)'
                             % (item, len(SCENARIOS), ', '.join(s.key for s in SCENARIOS)))
        wanted.update(s.number for s in match)
    return [s for s in SCENARIOS if s.number in wanted]


class Bench:
    def __init__(self, options, say=print):
        self.options = options
        self.say = say
        self.pg = Postgres(options.pg)
        self.spec = seeding.SeedSpec(options.accounts, options.rows)
        self.points = points_seed.PointsSpec(options.accounts)
        self.seed_start_epoch = calendar.timegm(self.spec.start.timetuple())
        self.seed_range_sql = seed_range_sql(self.spec)
        self.stream_path = stream_path(self.spec)
        self.run_db = 'bench_run_%d' % os.getpid()
        self.pgbench_db = 'bench_pgbench_s%d' % options.pgbench_scale
        self.cache = {}
        self.log_dir = options.log_dir
        os.makedirs(self.log_dir, exist_ok=True)
        self.wrk_log = open(os.path.join(self.log_dir, 'wrk.log'), 'ab')
        self.pgbench_log = open(os.path.join(self.log_dir, 'pgbench.log'), 'ab')
        self.expected_stream_rows = None
        self.export_sql = export_range_sql(self.spec)
        self.expected_export = None    # {'rows', 'first_id', 'last_id'} of the export's span
        self.signing_key_file = None
        self.busy = None               # scenario 12's busy account, once loaded
        self.readers = None            # scenario 12's readers, once loaded
        self.claimants = None          # scenario 13's claimants, once loaded
        self.brands = discounts.Brands(self.pg, self.run_db)
        self.claim_script = None
        self.prepared = {}
        self.service = None
        self.run_db_created = False
        # Seed and pgbench databases this run built (kept for the next run,
        # except after --quick, whose small seed is cheap to build again).
        self.created_databases = []

    # -- preparation ---------------------------------------------------

    def check_tools(self):
        wrk.ensure_installed(self.say)
        for tool in ('psql', 'pgbench'):
            if not shutil.which(tool):
                raise RuntimeError('%s is not installed (Debian: postgresql-client)' % tool)
        self.pg.version()  # the server answers

    def prepare(self, scenarios):
        started = time.perf_counter()
        self._drop_stale_run_databases()
        if self.options.reseed:
            self.pg.drop(self.spec.database)
        seeded_now = False
        if not self.pg.exists(self.spec.database):
            self.say('seeding %s: %d accounts (+1 hot), %d journal rows over %s (bulk COPY)'
                     % (self.spec.database, self.spec.accounts, self.spec.rows,
                        self.spec.span_text))
            with open(os.path.join(self.log_dir, 'seed.log'), 'ab') as log:
                seconds = seeding.seed(self.pg, self.spec, log=log,
                                       progress=self.say)
            seeded_now = True
            self.created_databases.append(self.spec.database)
            self.prepared['seed_seconds'] = round(seconds, 1)
            self.say('seeded in %.0f s (%d MB)' % (seconds, self.pg.size_bytes(
                self.spec.database) / 1e6))
        else:
            self.say('reusing seeded database %s' % self.spec.database)
        self.prepared['seed_database'] = self.spec.database
        self.prepared['seed_reused'] = not seeded_now
        if self.options.verify_seed or (self.options.verify_seed is None and seeded_now
                                        and self.spec.rows <= 200_000):
            self.say('verifying the seeded ledger (python -m balance_api verify)')
            ok, output = seeding.verify(self.pg, self.spec.database)
            self.prepared['seed_verify'] = {'ok': ok, 'output': output.splitlines()[-3:]}
            self.say('  ' + ' | '.join(output.splitlines()[-2:]))
            if not ok:
                raise RuntimeError('the seeded ledger does not verify: %s' % output[-1000:])

        if any(c.ceiling and c.ceiling.measurement == 'pgbench'
               for s in scenarios for c in s.criteria):
            if self.pg.pgbench_init(self.pgbench_db, self.options.pgbench_scale,
                                    self.pgbench_log):
                self.created_databases.append(self.pgbench_db)
                self.say('initialized %s (pgbench -i -s %d)'
                         % (self.pgbench_db, self.options.pgbench_scale))
            self.prepared['pgbench_database'] = self.pgbench_db

        copy_started = time.perf_counter()
        self.run_db_created = True
        self._copy_template()
        self.prepared['run_database'] = self.run_db
        self.prepared['run_database_copy_seconds'] = round(time.perf_counter() - copy_started, 1)
        self.expected_stream_rows = self.pg.scalar(
            'SELECT count(*) FROM (%s) rows' % self.seed_range_sql, dbname=self.run_db)
        self.prepared['seed_rows_in_range'] = self.expected_stream_rows
        self.say('fresh database %s copied from the seed in %.1f s'
                 % (self.run_db, self.prepared['run_database_copy_seconds']))
        if any(s.key == 'export' for s in scenarios):
            self._prepare_export()
        if any(s.points for s in scenarios):
            self._prepare_points()
        if any(s.key == 'discounts' for s in scenarios):
            self._prepare_discounts()
        self.prepared['prepare_seconds'] = round(time.perf_counter() - started, 1)

    def _prepare_export(self):
        """What scenario 11's exports must hold: the span's journal entries, counted
        both plainly and through the ceiling's joins (the same count, or the ceiling
        would not read the same rows)."""
        spec = self.spec
        plain = self.pg.scalar(
            "SELECT count(*) || ' ' || coalesce(min(id), 0) || ' ' || coalesce(max(id), 0) "
            "FROM journal_entry WHERE created_at >= '%s' AND created_at < '%s'"
            % (spec.start.date(), spec.end.date()), dbname=self.run_db)
        rows, first_id, last_id = (int(part) for part in str(plain).split())
        joined = int(self.pg.scalar('SELECT count(*) FROM (%s) rows' % self.export_sql,
                                    dbname=self.run_db))
        if joined != rows:
            raise RuntimeError('the export ceiling selects %d rows, the span holds %d entries'
                               % (joined, rows))
        self.expected_export = {'rows': rows, 'first_id': first_id or None,
                                'last_id': last_id or None}
        self.prepared['export_rows_in_range'] = rows
        self.prepared['export_ceiling_rows'] = joined

    def _signing_key(self):
        """The signing key of scenario 11's service: made once per run, in its log directory."""
        if self.signing_key_file is None:
            from balance_api.exports.signing import create_key_file
            path = os.path.join(os.path.abspath(self.log_dir), EXPORT_KEY_FILE)
            if not os.path.exists(path):
                create_key_file(path)
            self.signing_key_file = path
        return self.signing_key_file

    def _prepare_points(self):
        """The points of scenarios 7 and 8, written into the run database (COPY)."""
        self.points.check()
        self.say('loading points into %s: %d spend members with %s points per payer, one '
                 'member with %d grants (all but %d spent), one with %d (bulk COPY)'
                 % (self.run_db, self.points.spend_members, '{:,}'.format(points_seed.BIG_GRANT),
                    points_seed.DEPTH_GRANTS, points_seed.DEPTH_UNSPENT,
                    points_seed.DEPTH_UNSPENT))
        with open(os.path.join(self.log_dir, 'seed.log'), 'ab') as log:
            facts = points_seed.load(self.pg, self.run_db, self.points, self.spec.start, log=log)
        self.prepared['points_seed'] = facts
        self.say('  %d points entries and %d draws loaded in %.1f s'
                 % (facts['entries'], facts['draws'], facts['seconds']))
        if self.options.verify_seed or (self.options.verify_seed is None
                                        and self.options.quick):
            self.say('verifying the loaded points (the points half of python -m balance_api '
                     'verify)')
            verify_started = time.perf_counter()
            ok, summary = points_seed.verify(self.pg, self.run_db)
            facts['verify'] = {'ok': ok, 'output': summary,
                               'seconds': round(time.perf_counter() - verify_started, 1)}
            self.say('  %s | %s' % (summary, 'points OK' if ok else 'points BROKEN'))
            if not ok:
                raise RuntimeError('the loaded points do not verify: %s' % summary)

    def _prepare_discounts(self):
        """Scenario 13's claimants, written into the run database (COPY)."""
        self.say('loading %s claimants into %s (bulk COPY)'
                 % ('{:,}'.format(discounts.CLAIMANTS), self.run_db))
        with open(os.path.join(self.log_dir, 'seed.log'), 'ab') as log:
            self.claimants = discounts.load_claimants(self.pg, self.run_db, self.spec,
                                                      discounts.CLAIMANTS, log=log)
        self.prepared['discount_claimants'] = self.claimants
        self.claim_script = discounts.write_claim_script(
            os.path.join(self.log_dir, 'discount_claim.sql'))
        self.say('  loaded in %.1f s' % self.claimants['seconds'])

    def _copy_template(self):
        self.pg.drop(self.run_db)
        for attempt in range(20):
            try:
                self.pg.create(self.run_db, template=self.spec.database)
                return
            except Exception as exc:   # autovacuum may be visiting the template
                if 'being accessed by other users' not in str(exc) or attempt == 19:
                    raise
                time.sleep(1)

    def _drop_stale_run_databases(self):
        conn = self.pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_run_%'")
                names = [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
        for name in names:
            suffix = name[len('bench_run_'):]
            if suffix.isdigit() and not os.path.exists('/proc/%s' % suffix):
                self.pg.drop(name)

    def cleanup(self):
        if self.service is not None:
            self.service.stop()
            self.service = None
        if self.run_db_created and not self.options.keep_run_db:
            try:
                self.pg.drop(self.run_db)
            except Exception as exc:
                self.say('could not drop %s: %s' % (self.run_db, exc))
        self._drop_or_report_kept()
        self.wrk_log.close()
        self.pgbench_log.close()

    def _drop_or_report_kept(self):
        kept = []
        for name in (self.spec.database, self.pgbench_db):
            try:
                if not self.pg.exists(name):
                    continue
                if self.options.quick and name in self.created_databases:
                    self.pg.drop(name)
                    self.say('dropped %s (made by this quick run)' % name)
                    continue
                kept.append('%s (%d MB)' % (name, self.pg.size_bytes(name) / 1e6))
            except Exception as exc:
                self.say('could not look at %s: %s' % (name, exc))
        if kept:
            self.say('kept on the server for the next run: %s; '
                     '`python -m bench --drop-databases` drops every benchmark database'
                     % ', '.join(kept))

    # -- measurements --------------------------------------------------

    def _wrk(self, script, args, duration=None):
        cpu_before = self.service.cpu_seconds()
        sample = wrk.run(self.service.url, script, duration or self.options.duration,
                         self.options.connections, self.options.threads,
                         args=list(args) + ['seed=%d' % random.randrange(1, 1 << 30)],
                         log=self.wrk_log, token=self.service.token)
        # The workers' CPU per request: steadier than req/s when other work shares
        # the machine (it counts work, not waiting for a core).
        cpu_after = self.service.cpu_seconds()
        spent = sum(cpu_after[pid] - cpu_before[pid] for pid in cpu_after
                    if cpu_after[pid] is not None and cpu_before.get(pid) is not None)
        sample['worker_cpu_ms_per_request'] = (spent * 1000 / sample['requests']
                                               if sample['requests'] else None)
        return sample

    def _measure(self, name, warmup=False, repeat=0):
        """Take one sample of measurement ``name`` (the service must be running)."""
        accounts = 'accounts=%d' % self.spec.accounts
        duration = self.options.warmup if warmup else None
        if name == 'pgbench':
            return self.pg.pgbench_run(self.pgbench_db, self.options.connections,
                                       self.options.threads, self.options.duration,
                                       self.pgbench_log)
        if name == 'ledger_post_pgbench':
            return self.pg.pgbench_run(self.run_db, self.options.connections,
                                       self.options.threads, self.options.duration,
                                       self.pgbench_log, script=LEDGER_POST_SCRIPT,
                                       variables={'accounts': self.spec.accounts})
        if name == 'transfer':
            return self._wrk('transfer.lua', [accounts], duration)
        if name == 'hot_transfer':
            return self._wrk('hot_transfer.lua', [accounts, 'hot=%d' % self.spec.hot_account],
                             duration)
        if name == 'add_sub':
            return self._wrk('add_sub.lua', [accounts], duration)
        if name == 'balance_get':
            return self._wrk('balance_get.lua', [accounts], duration)
        if name == 'health':
            return self._wrk('health.lua', [], duration)
        if name == 'history':
            return self._wrk('history.lua', [accounts, 'start=%d' % self.seed_start_epoch,
                                             'days=%d' % self.spec.days,
                                             'span=%d' % HISTORY_SPAN_DAYS], duration)
        if name == 'history_page':
            return self._wrk('history_page.lua', [accounts, 'limit=%d' % HISTORY_PAGE],
                             duration)
        if name == 'history_whole':
            return self._wrk('history_page.lua', ['accounts=%d' % self.readers['count'],
                                                  'first=%d' % self.readers['first']], duration)
        if name == 'history_user_page':
            return self._wrk('history_page.lua', [accounts, 'limit=%d' % HISTORY_PAGE,
                                                  'first_id=1', 'last_id=%d' % self.spec.rows],
                             duration)
        if name == 'history_busy_page':
            busy = self.busy
            return self._wrk('history_page.lua', [
                'uid=%d' % busy['account'], 'limit=%d' % HISTORY_PAGE,
                'first_id=%d' % busy['first_journal_id'],
                'last_id=%d' % busy['last_journal_id']], duration)
        if name == 'points_add':
            return self._wrk('points_add.lua', [
                'members=%d' % self.points.spend_members,
                'payers=%s' % ','.join(points_seed.PAYERS),
                'max_points=%d' % POINTS_ADD_MAX], duration)
        if name == 'points_spend':
            return self._wrk('points_spend.lua', ['members=%d' % self.points.spend_members,
                                                  'max_points=%d' % POINTS_SPEND_MAX], duration)
        if name in ('points_spend_deep', 'points_spend_shallow'):
            member = (self.points.deep_member if name == 'points_spend_deep'
                      else self.points.shallow_member)
            return self._wrk('points_spend.lua', ['members=1', 'first=%d' % member,
                                                  'max_points=1'], duration)
        if name == 'overspend':
            return self._overspend(self.points.overspend_member(repeat))
        if name == 'discount_generate':
            return self._discount_generate()
        if name == 'discount_copy':
            return self._discount_copy()
        if name == 'discount_claim':
            return self._discount_claim(duration)
        if name == 'discount_claim_pgbench':
            return self._discount_claim_pgbench()
        if name == 'copy':
            return self._copy()
        if name == 'stream':
            return self._stream()
        if name == 'export_copy':
            return self._export_copy()
        if name == 'export':
            return self._exports()
        raise KeyError(name)

    def sample(self, name, repeat, measure=None):
        """Sample ``repeat`` of ``name``, taken once (as measurement ``measure``, by
        default ``name`` itself) and shared by every scenario that needs it."""
        key = (name, repeat)
        if key not in self.cache:
            self.cache[key] = self._measure(measure or name, repeat=repeat)
        return self.cache[key]

    def _copy(self):
        rows, size, seconds = self.pg.copy_out(self.run_db, self.seed_range_sql)
        if rows != self.expected_stream_rows:
            raise RuntimeError('COPY returned %d rows, expected %d' % (rows, self.expected_stream_rows))
        return {'rows': rows, 'bytes': size, 'seconds': seconds, 'rows_per_s': rows / seconds}

    def _stream(self):
        service = self.service
        baseline = max(v for v in service.rss_kib().values() if v)
        peak_reset = service.reset_peak_rss()
        connection = http.client.HTTPConnection('127.0.0.1', service.port, timeout=600)
        rows = size = 0
        tail = b''
        last = b''
        keep = len(STREAM_ROW_MARK) - 1
        with RssSampler(service) as sampler:
            started = time.perf_counter()
            connection.request('GET', self.stream_path, headers=service.headers)
            response = connection.getresponse()
            first_byte = time.perf_counter() - started
            status = response.status
            while True:
                data = response.read(1 << 20)
                if not data:
                    break
                size += len(data)
                window = tail + data
                rows += window.count(STREAM_ROW_MARK)
                tail = window[-keep:]
                last = data[-1:]
            seconds = time.perf_counter() - started
        connection.close()
        hwm = [v for v in service.peak_rss_kib().values() if v]
        peak_kib = max([sampler.peak_kib] + (hwm if peak_reset else []))
        if status != 200 or last != b']' or rows != self.expected_stream_rows:
            raise RuntimeError('stream incomplete: status %d, %d rows of %d, ends with %r'
                               % (status, rows, self.expected_stream_rows, last))
        return {
            'rows': rows, 'bytes': size, 'seconds': seconds, 'rows_per_s': rows / seconds,
            'first_byte_s': first_byte,
            'peak_rss_mb': peak_kib * 1024 / 1e6,
            'sampled_peak_rss_mb': sampler.peak_kib * 1024 / 1e6,
            'hwm_peak_rss_mb': max(hwm) * 1024 / 1e6 if hwm and peak_reset else None,
            'idle_rss_mb': baseline * 1024 / 1e6,
            'rss_samples': sampler.samples,
        }

    def _export_copy(self):
        rows, size, seconds = self.pg.copy_out(self.run_db, self.export_sql)
        if rows != self.expected_export['rows']:
            raise RuntimeError('export COPY returned %d rows, expected %d'
                               % (rows, self.expected_export['rows']))
        return {'rows': rows, 'bytes': size, 'seconds': seconds, 'rows_per_s': rows / seconds}

    def _exports(self):
        """One export per format, one after the other; the peak RSS is that of both."""
        sample = {format: self._export(format) for format in EXPORT_FORMATS}
        sample['peak_rss_mb'] = max(sample[format]['peak_rss_mb'] for format in EXPORT_FORMATS)
        return sample

    def _export(self, format):
        """GET /export of the seeded span in ``format``, read to the end in 1 MiB reads.

        Rows are the lines (CSV: CRLF-ended, minus the header; JSON Lines: minus
        the manifest, which is the last line and is parsed once the clock stops).
        """
        service = self.service
        expected = self.expected_export
        baseline = max(v for v in service.rss_kib().values() if v)
        peak_reset = service.reset_peak_rss()
        connection = http.client.HTTPConnection('127.0.0.1', service.port, timeout=600)
        end = b'\r\n' if format == 'csv' else b'\n'
        lines = size = 0
        tail = b''        # CSV: the last byte read, for a CRLF split between two reads
        last_line = b''   # the last complete line (JSON Lines: the manifest)
        partial = []      # the line being read
        with RssSampler(service) as sampler:
            started = time.perf_counter()
            connection.request('GET', export_path(self.spec, format), headers=service.headers)
            response = connection.getresponse()
            first_byte = time.perf_counter() - started
            status = response.status
            while True:
                data = response.read(1 << 20)
                if not data:
                    break
                size += len(data)
                if format == 'csv':
                    lines += (tail + data).count(end)   # a CRLF split between two reads
                    tail = data[-1:]
                    continue
                lines += data.count(end)
                cut = data.rfind(end)
                if cut < 0:
                    partial.append(data)
                    continue
                before = data.rfind(end, 0, cut)
                last_line = (b''.join(partial) + data[:cut] if before < 0
                             else data[before + 1:cut])
                partial = [data[cut + 1:]] if cut + 1 < len(data) else []
            seconds = time.perf_counter() - started
            content_type = response.getheader('Content-Type')
        connection.close()
        hwm = [v for v in service.peak_rss_kib().values() if v]
        peak_kib = max([sampler.peak_kib] + (hwm if peak_reset else []))
        result = {
            'format': format, 'status': status, 'content_type': content_type,
            'lines': lines, 'bytes': size, 'seconds': seconds, 'first_byte_s': first_byte,
            'peak_rss_mb': peak_kib * 1024 / 1e6,
            'sampled_peak_rss_mb': sampler.peak_kib * 1024 / 1e6,
            'hwm_peak_rss_mb': max(hwm) * 1024 / 1e6 if hwm and peak_reset else None,
            'idle_rss_mb': baseline * 1024 / 1e6,
            'rss_samples': sampler.samples,
        }
        problems = []
        if status != 200:
            problems.append('status %d' % status)
        rows = lines - 1   # the header, or the manifest
        if format == 'csv':
            if tail != b'\n':
                problems.append('the body does not end with a line end')
        else:
            if partial:
                problems.append('the body does not end with a line end')
            try:
                manifest = json.loads(last_line)['manifest']
            except (ValueError, KeyError, TypeError):
                manifest = None
                problems.append('the last line is not a manifest: %r' % last_line[:200])
            if manifest is not None:
                from balance_api.exports import signing
                public_key = signing.public_key_text(
                    signing.load_private_key(self.signing_key_file))
                result['manifest'] = {key: manifest.get(key) for key in (
                    'rows', 'first_id', 'last_id', 'settled_id', 'snapshot_at')}
                result['manifest']['accounts'] = len(manifest.get('accounts') or [])
                # Signed with the key the service was given.
                result['manifest']['signature_valid'] = signing.verify(manifest, public_key)
                for key in ('rows', 'first_id', 'last_id'):
                    if manifest.get(key) != expected[key]:
                        problems.append('manifest %s %r, expected %r'
                                        % (key, manifest.get(key), expected[key]))
                if not result['manifest']['signature_valid']:
                    problems.append('the manifest\'s signature does not verify')
        result['rows'] = rows
        result['rows_per_s'] = rows / seconds
        if rows != expected['rows']:
            problems.append('%d rows of %d' % (rows, expected['rows']))
        if problems:
            raise RuntimeError('export (%s) wrong: %s' % (format, '; '.join(problems)))
        return result

    def _request(self, method, path, body=None, json_body=True, timeout=30):
        """One request to the service on a connection of its own: (status, parsed body)."""
        connection = http.client.HTTPConnection('127.0.0.1', self.service.port, timeout=timeout)
        try:
            headers = dict(self.service.headers)
            if body is not None:
                if json_body:
                    body = json.dumps(body)
                    headers['Content-Type'] = 'application/json'
                else:
                    body = '&'.join('%s=%s' % item for item in body.items())
                    headers['Content-Type'] = 'application/x-www-form-urlencoded'
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, _parse_body(answer.read())
        finally:
            connection.close()

    def _overspend(self, member):
        """OVERSPEND_CLIENTS spends at once on a new member whose grants cover
        OVERSPEND_COVERED of them; counts the answers and reads the balance."""
        status, _ = self._request('POST', '/user', {'uid': member}, json_body=False)
        if status != 201:
            raise RuntimeError('POST /user uid=%d answered %d' % (member, status))
        moment = time.time() - 3600
        for index, (payer, points) in enumerate(OVERSPEND_GRANTS):
            stamp = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(moment + index))
            status, _ = self._request('POST', '/points/%d/add' % member,
                                      {'payer': payer, 'points': points, 'timestamp': stamp})
            if status != 201:
                raise RuntimeError('POST /points/%d/add answered %d' % (member, status))
        status, before = self._request('GET', '/points/%d/balance' % member)
        if status != 200 or sum(before.values()) != OVERSPEND_COVERED * OVERSPEND_POINTS:
            raise RuntimeError('member %d holds %r before the overspend' % (member, before))

        path = '/points/%d/spend' % member
        body = json.dumps({'points': OVERSPEND_POINTS})
        ready = threading.Barrier(OVERSPEND_CLIENTS)
        answers = [None] * OVERSPEND_CLIENTS

        def client(index):
            connection = http.client.HTTPConnection('127.0.0.1', self.service.port, timeout=60)
            try:
                connection.connect()
                ready.wait(timeout=60)
                connection.request('POST', path, body=body,
                                   headers={'Content-Type': 'application/json',
                                            **self.service.headers})
                answer = connection.getresponse()
                answers[index] = (answer.status, _parse_body(answer.read()))
            except Exception as exc:   # counted below, as a socket error
                answers[index] = (None, '%s: %s' % (type(exc).__name__, exc))
            finally:
                connection.close()

        threads = [threading.Thread(target=client, args=(i,), name='overspend-%d' % i)
                   for i in range(OVERSPEND_CLIENTS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started

        ok = refused = drawn = 0
        other = collections.Counter()
        for status, data in answers:
            if status == 200 and isinstance(data, list):
                ok += 1
                drawn -= sum(item['points'] for item in data)
            elif status == 409 and isinstance(data, dict) and data.get('code') == 605:
                refused += 1
            else:
                other['socket error' if status is None else str(status)] += 1
        status, after = self._request('GET', '/points/%d/balance' % member)
        if status != 200:
            raise RuntimeError('GET /points/%d/balance answered %d' % (member, status))
        return {
            'member': member, 'spends': OVERSPEND_CLIENTS, 'points_each': OVERSPEND_POINTS,
            'covered': OVERSPEND_COVERED, 'ok': ok, 'refused': refused, 'other': dict(other),
            'points_drawn': drawn, 'balance_before': before, 'balance_after': after,
            'final_balance': sum(after.values()), 'seconds': seconds,
        }

    def _generated_codes(self):
        return (discounts.QUICK_GENERATED_CODES if self.options.quick
                else discounts.GENERATED_CODES)

    def _discount_generate(self):
        """One generation request for a new brand, timed to its answer."""
        brand, number = self.brands.new_id(), self._generated_codes()
        started = time.perf_counter()
        status, body = self._request('POST', '/discounts/api/v1.0/generate',
                                     {'brand_id': brand, 'number_of_codes': number},
                                     timeout=600)
        seconds = time.perf_counter() - started
        stored = self.brands.counts(brand)[0]
        if status != 201 or stored != number:
            raise RuntimeError('generating %d codes for brand %d answered %s %r; the brand '
                               'holds %d codes' % (number, brand, status, body, stored))
        return {'brand_id': brand, 'codes': number, 'seconds': seconds,
                'codes_per_s': number / seconds}

    def _discount_copy(self):
        number = self._generated_codes()
        brand, seconds = self.brands.load(number)
        stored = self.brands.counts(brand)[0]
        if stored != number:
            raise RuntimeError('COPY of %d codes left brand %d with %d' % (number, brand, stored))
        return {'brand_id': brand, 'codes': number, 'seconds': seconds,
                'codes_per_s': number / seconds}

    def _discount_claim(self, duration=None):
        """wrk claiming from a brand of its own, a new claimant every request."""
        claimants = self.claimants
        brand, _ = self.brands.load(claimants['count'])
        threads = max(1, min(self.options.threads, self.options.connections))
        sample = self._wrk('discount_claim.lua', [
            'brand=%d' % brand, 'first=%d' % claimants['first'],
            'count=%d' % claimants['count'], 'threads=%d' % threads], duration)
        # Every request wrk gave up on has finished on the server by now.
        self.pg.wait_for_idle(self.run_db)
        _, claimed, audit_rows, distinct = self.brands.counts(brand)
        sample.update({'brand_id': brand, 'claimed': claimed, 'claim_audit_rows': audit_rows,
                       'claimants': distinct})
        return sample

    def _discount_claim_pgbench(self):
        """pgbench running the service's claim statement on a brand of its own."""
        number = max(discounts.PGBENCH_MIN_CODES,
                     int(self.options.duration * discounts.PGBENCH_CODES_PER_SECOND))
        brand, _ = self.brands.load(number)
        sample = self.pg.pgbench_run(
            self.run_db, self.options.connections, self.options.threads,
            self.options.duration, self.pgbench_log, script=self.claim_script,
            variables={'brand': brand, 'key_name': discounts.PGBENCH_KEY_NAME})
        _, claimed, audit_rows, _ = self.brands.counts(brand)
        transactions = sample['transactions']
        # A claimant drawn twice reads the code it holds (one in millions); a brand
        # out of codes would make every later claim a cheap no-op.
        if claimed >= number or transactions is None or claimed < 0.999 * transactions \
                or audit_rows != claimed:
            raise RuntimeError('pgbench claims: %s transactions, %d claimed of %d codes, %d '
                               'audit rows' % (transactions, claimed, number, audit_rows))
        sample.update({'brand_id': brand, 'codes': number, 'claimed': claimed})
        return sample

    def _history_rows_sample(self, requests=40):
        """Rows per answer of the history scenario's requests (a sanity check)."""
        rng = random.Random(7)
        counts = []
        for _ in range(requests):
            first = rng.randrange(0, self.spec.days - HISTORY_SPAN_DAYS + 1)
            start = self.seed_start_epoch + first * 86400
            path = '/history/uid=%d&date-start=%s&date-end=%s' % (
                rng.randrange(1, self.spec.accounts + 1),
                time.strftime('%Y-%m-%d', time.gmtime(start)),
                time.strftime('%Y-%m-%d', time.gmtime(start + (HISTORY_SPAN_DAYS - 1) * 86400)))
            request = urllib.request.Request(self.service.url + path,
                                             headers=self.service.headers)
            with urllib.request.urlopen(request, timeout=30) as answer:
                counts.append(len(json.loads(answer.read())))
        return {'requests': requests, 'mean_rows': sum(counts) / len(counts),
                'max_rows': max(counts), 'empty': sum(1 for c in counts if c == 0)}

    def _load_busy_account(self):
        """Scenario 12's busy account, written into the run database once per run."""
        if self.busy is None:
            entries = int(self.pg.scalar('SELECT count(*) FROM journal_entry',
                                         dbname=self.run_db))
            self.say('loading the busy account %d into %s: %s entries (bulk COPY)'
                     % (seeding.busy_account(self.spec), self.run_db, '{:,}'.format(entries)))
            with open(os.path.join(self.log_dir, 'seed.log'), 'ab') as log:
                self.busy = seeding.load_busy_account(self.pg, self.run_db, self.spec, entries,
                                                      log=log)
            self.say('  %s postings (%.1f%% of all postings, on one side of %.1f%% of all '
                     'entries) loaded in %.1f s' % (
                         '{:,}'.format(self.busy['postings']), 100 * self.busy['posting_share'],
                         100 * self.busy['entry_share'], self.busy['seconds']))
            self.busy['hot_account'] = self.spec.hot_account
            self.busy['hot_account_postings'] = int(self.pg.scalar(
                'SELECT count(*) FROM posting WHERE account_id = %d' % self.spec.hot_account,
                dbname=self.run_db))
        return self.busy

    def _load_readers(self):
        """Scenario 12's readers, whose whole histories it reads: written into the run
        database once per run."""
        if self.readers is None:
            self.say('loading %d readers of %d entries each into %s (bulk COPY)'
                     % (seeding.READERS, seeding.READER_ENTRIES, self.run_db))
            with open(os.path.join(self.log_dir, 'seed.log'), 'ab') as log:
                self.readers = seeding.load_readers(self.pg, self.run_db, self.spec, log=log)
            self.say('  loaded in %.1f s' % self.readers['seconds'])
        return self.readers

    def _history_uid_rows_sample(self, requests=40):
        """Rows per answer of scenario 12's four requests, each answer checked to be 200."""
        rng = random.Random(12)
        busy = self.busy
        shapes = {
            'history_page': lambda: '/history?uid=%d&limit=%d' % (
                rng.randrange(1, self.spec.accounts + 1), HISTORY_PAGE),
            'history_whole': lambda: '/history?uid=%d' % rng.randrange(
                self.readers['first'], self.readers['first'] + self.readers['count']),
            'history_user_page': lambda: '/history?uid=%d&after_id=%d&limit=%d' % (
                rng.randrange(1, self.spec.accounts + 1), rng.randint(1, self.spec.rows),
                HISTORY_PAGE),
            'history_busy_page': lambda: '/history?uid=%d&after_id=%d&limit=%d' % (
                busy['account'], rng.randint(busy['first_journal_id'], busy['last_journal_id']),
                HISTORY_PAGE),
        }
        result = {}
        for name, path_of in shapes.items():
            counts = []
            for _ in range(requests):
                path = path_of()
                status, rows = self._request('GET', path)
                if status != 200 or not isinstance(rows, list):
                    raise RuntimeError('GET %s answered %s' % (path, status))
                counts.append(len(rows))
            result[name] = {'requests': requests, 'mean_rows': sum(counts) / len(counts),
                            'max_rows': max(counts), 'min_rows': min(counts),
                            'empty': sum(1 for c in counts if c == 0)}
        return result

    # -- scenarios -----------------------------------------------------

    def run_scenario(self, scenario):
        """Run one scenario (with its ceilings) ``repeat`` times; returns its raw record."""
        options = self.options
        record = {'number': scenario.number, 'key': scenario.key, 'title': scenario.title,
                  'description': scenario.description, 'error': None,
                  'service_measurements': sorted({c.service.measurement
                                                  for c in scenario.criteria})}
        needed = []
        for criterion in scenario.criteria:
            for figure in (criterion.ceiling, criterion.service):
                if figure and figure.measurement not in needed:
                    needed.append(figure.measurement)
        if scenario.services:
            # Every figure of a scenario that compares services is a service's.
            record['service_measurements'] = sorted(needed)
            log_paths = [self._service_log(scenario, prefix) for prefix, _ in scenario.services]
        else:
            log_paths = [self._service_log(scenario)]
        deadlocks_before = self.pg.deadlocks(self.run_db)
        started = time.perf_counter()
        try:
            if scenario.services:
                self._run_services(scenario, needed, record)
            else:
                if scenario.key == 'history-uid':
                    record['busy_account'] = self._load_busy_account()
                    record['readers'] = self._load_readers()
                env = {'SIGNING_KEY_FILE': self._signing_key()} if scenario.signing_key else None
                self.service = Service(self.pg.database_url(self.run_db), options.workers,
                                       log_paths[0], env=env)
                self.service.start()
                record['workers'] = len(self.service.worker_pids())
                if options.warmup > 0 and scenario.warmup:
                    warm = self._warm_up(scenario.warmup)
                    record['warmup'] = _brief(warm)
                if scenario.key == 'history':
                    record['history_rows_per_answer'] = self._history_rows_sample()
                if scenario.key == 'history-uid':
                    record['history_uid_rows_per_answer'] = self._history_uid_rows_sample()
                for repeat in range(options.repeat):
                    for name in needed:
                        self.sample(name, repeat)
                    self.say('  %d. %s: run %d/%d done' % (scenario.number, scenario.title,
                                                            repeat + 1, options.repeat))
        except Exception as exc:
            record['error'] = '%s: %s' % (type(exc).__name__, exc)
            self.say('  %d. %s FAILED: %s' % (scenario.number, scenario.title, record['error']))
        finally:
            if self.service is not None:
                self.service.stop()
                self.service = None
        record['seconds'] = round(time.perf_counter() - started, 1)
        self.pg.wait_for_backends_to_exit(self.run_db)
        record['deadlocks'] = self.pg.deadlocks(self.run_db) - deadlocks_before
        record['service_log_errors'] = sum(_count_error_lines(path) for path in log_paths)
        record['measurements'] = {
            name: [self.cache[(name, r)] for r in range(options.repeat) if (name, r) in self.cache]
            for name in needed}
        wrk_errors = {}
        for name in needed:
            for sample in record['measurements'][name]:
                if 'errors' in sample:
                    for key, value in sample['errors'].items():
                        wrk_errors.setdefault(name, {}).setdefault(key, 0)
                        wrk_errors[name][key] += value
        if 'warmup' in record and 'errors' in record['warmup']:
            wrk_errors.setdefault('warmup', record['warmup']['errors'])
        for warm in record.get('warmups', []):   # every warm-up of every service, added up
            for key, value in warm.get('errors', {}).items():
                wrk_errors.setdefault('warmup', {}).setdefault(key, 0)
                wrk_errors['warmup'][key] += value
        record['errors'] = wrk_errors
        return record

    def _service_log(self, scenario, prefix=None):
        return os.path.join(self.log_dir, 'service-%d-%s%s.log' % (
            scenario.number, scenario.key, '-' + prefix if prefix else ''))

    def _warm_up(self, name, measure=None):
        warm = self._measure(measure or name, warmup=True)
        if name != 'copy' and warm.get('ok_requests', 1) == 0:
            raise RuntimeError('every warm-up request of %s failed (%s); service log: %s'
                               % (name, warm['errors'], self.service.log_tail(5)))
        return warm

    def _run_services(self, scenario, needed, record):
        """The repeats of a scenario that compares services (``Scenario.services``).

        One service at a time, on the run database: in each repeat every service
        is started, warmed up with each of its measurements, measured and stopped,
        in the scenario's order in even repeats and the other way round in odd
        ones, so that drift (the journal growing, the machine's other work) falls
        on every service alike.
        """
        options = self.options
        by_service = collections.OrderedDict((prefix, []) for prefix, _ in scenario.services)
        for name in needed:
            by_service[service_of(scenario, name)[0]].append(name)
        environments = dict(scenario.services)
        record['service_order'] = []
        record['warmups'] = []
        record['service_probes'] = {}
        for repeat in range(options.repeat):
            order = list(by_service) if repeat % 2 == 0 else list(by_service)[::-1]
            record['service_order'].append(order)
            for prefix in order:
                self.service = Service(self.pg.database_url(self.run_db), options.workers,
                                       self._service_log(scenario, prefix),
                                       env=environments[prefix])
                try:
                    self.service.start()
                    record.setdefault('workers', len(self.service.worker_pids()))
                    probe = self._probe_keys()
                    record['service_probes'].setdefault(prefix, probe)
                    for name in by_service[prefix]:
                        base = service_of(scenario, name)[2]
                        if options.warmup > 0:
                            warm = self._warm_up(name, base)
                            record['warmups'].append(dict(_brief(warm), service=prefix,
                                                          measurement=name, repeat=repeat))
                        self.sample(name, repeat, base)
                finally:
                    self.service.stop()
                    self.service = None
                # Every backend of this service gone before the next one starts.
                self.pg.wait_for_backends_to_exit(self.run_db)
            self.say('  %d. %s: run %d/%d done (%s)' % (
                scenario.number, scenario.title, repeat + 1, options.repeat,
                ' then '.join(order)))

    def _probe_keys(self):
        """One request without a key: a service with keys must refuse it (401), one
        with keys off must serve it and say so (X-Balance-Auth: off). Otherwise the
        comparison would compare nothing: raises."""
        connection = http.client.HTTPConnection('127.0.0.1', self.service.port, timeout=30)
        try:
            connection.request('GET', KEYS_PROBE_PATH)
            answer = connection.getresponse()
            answer.read()
            status, auth_header = answer.status, answer.getheader('X-Balance-Auth')
        finally:
            connection.close()
        keyed = None
        if self.service.keys:
            keyed, _ = self._request('GET', KEYS_PROBE_PATH)
            held = status == 401 and keyed == 200
        else:
            held = status == 200 and auth_header == 'off'
        probe = {'keys': self.service.keys, 'path': KEYS_PROBE_PATH, 'keyless_status': status,
                 'keyed_status': keyed, 'x_balance_auth': auth_header}
        if not held:
            raise RuntimeError('the service with keys %s answered GET %s %s without a key '
                               '(X-Balance-Auth: %s) and %s with one' % (
                                   'on' if self.service.keys else 'off', KEYS_PROBE_PATH,
                                   status, auth_header, keyed))
        return probe


def _parse_body(data):
    """An answer's JSON, or its text when it is not JSON."""
    try:
        return json.loads(data) if data else None
    except ValueError:
        return data.decode(errors='replace')


def _brief(sample):
    return {key: sample[key] for key in ('ok_rps', 'requests', 'errors', 'rows_per_s')
            if key in sample}


def _count_error_lines(path):
    count = 0
    try:
        with open(path, 'rb') as handle:
            for line in handle:
                if b' ERROR ' in line or b'Traceback' in line:
                    count += 1
    except OSError:
        pass
    return count
