"""Running the scenarios: databases, the service, the measurements and their repeats.

A measurement (one wrk run, one pgbench run, one stream...) is taken once per
repeat and shared by every scenario that needs it, so a scenario's ceiling is
always measured in the same run as the scenario itself.
"""
import calendar
import http.client
import json
import os
import random
import shutil
import time
import urllib.request
from typing import Callable, NamedTuple, Optional, Tuple

from . import seed as seeding
from . import wrk
from .pg import Postgres
from .service import RssSampler, Service

HISTORY_SPAN_DAYS = 2
RSS_LIMIT_MB = 150.0          # decimal megabytes
STREAM_ROW_MARK = b'{"id": '  # how every streamed history row starts


def seed_range_sql(spec):
    """The journal rows of the seeded span, as history returns them (same columns, same order)."""
    return ("SELECT id, created_at, receiver_id, sum, operation, transaction_description, "
            "sender_id FROM journal_entry WHERE created_at >= '%s' AND created_at < '%s' "
            "ORDER BY id" % (spec.start.date(), spec.end.date()))


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


class Scenario(NamedTuple):
    number: int
    key: str
    title: str
    description: str
    warmup: Optional[str]          # the measurement to warm the service up with
    criteria: Tuple[Criterion, ...]
    writes: bool = False
    require_clean: bool = False    # zero errors and zero deadlocks are part of the target


def _ok_rps(sample):
    return sample['ok_rps']


def _p50_ms(sample):
    return sample['latency_us']['p50'] / 1000.0


def _p99_ms(sample):
    return sample['latency_us']['p99'] / 1000.0


PGBENCH_TPS = Figure('pgbench', lambda s: s['tps'], 'tps')

SCENARIOS = (
    Scenario(1, 'transfers', 'Random transfers',
             'PUT /transfer between two random users of the seeded accounts, form-encoded; '
             'ceiling: pgbench built-in tpcb-like on the same server with as many clients.',
             'transfer',
             (Criterion('1', 'random transfers', Figure('transfer', _ok_rps, 'req/s'), PGBENCH_TPS,
                        '>=', 0.5),),
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
             (Criterion('3', 'add/sub', Figure('add_sub', _ok_rps, 'req/s'), PGBENCH_TPS,
                        '>=', 0.6),),
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
            raise ValueError('unknown scenario %r (use 1-6 or %s)'
                             % (item, ', '.join(s.key for s in SCENARIOS)))
        wanted.update(s.number for s in match)
    return [s for s in SCENARIOS if s.number in wanted]


class Bench:
    def __init__(self, options, say=print):
        self.options = options
        self.say = say
        self.pg = Postgres(options.pg)
        self.spec = seeding.SeedSpec(options.accounts, options.rows)
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
        self.prepared = {}
        self.service = None
        self.run_db_created = False

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
        self.prepared['prepare_seconds'] = round(time.perf_counter() - started, 1)
        self.say('fresh database %s copied from the seed in %.1f s'
                 % (self.run_db, self.prepared['run_database_copy_seconds']))

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
        self.wrk_log.close()
        self.pgbench_log.close()

    # -- measurements --------------------------------------------------

    def _wrk(self, script, args, duration=None):
        return wrk.run(self.service.url, script, duration or self.options.duration,
                       self.options.connections, self.options.threads,
                       args=list(args) + ['seed=%d' % random.randrange(1, 1 << 30)],
                       log=self.wrk_log)

    def _measure(self, name, warmup=False):
        """Take one sample of measurement ``name`` (the service must be running)."""
        accounts = 'accounts=%d' % self.spec.accounts
        duration = self.options.warmup if warmup else None
        if name == 'pgbench':
            return self.pg.pgbench_run(self.pgbench_db, self.options.connections,
                                       self.options.threads, self.options.duration,
                                       self.pgbench_log)
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
        if name == 'copy':
            return self._copy()
        if name == 'stream':
            return self._stream()
        raise KeyError(name)

    def sample(self, name, repeat):
        key = (name, repeat)
        if key not in self.cache:
            self.cache[key] = self._measure(name)
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
            connection.request('GET', self.stream_path)
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
            with urllib.request.urlopen(self.service.url + path, timeout=30) as answer:
                counts.append(len(json.loads(answer.read())))
        return {'requests': requests, 'mean_rows': sum(counts) / len(counts),
                'max_rows': max(counts), 'empty': sum(1 for c in counts if c == 0)}

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
        log_path = os.path.join(self.log_dir, 'service-%d-%s.log' % (scenario.number, scenario.key))
        deadlocks_before = self.pg.deadlocks(self.run_db)
        started = time.perf_counter()
        try:
            self.service = Service(self.pg.database_url(self.run_db), options.workers, log_path)
            self.service.start()
            record['workers'] = len(self.service.worker_pids())
            if options.warmup > 0 and scenario.warmup:
                warm = self._measure(scenario.warmup, warmup=True)
                record['warmup'] = _brief(warm)
                if scenario.warmup != 'copy' and warm.get('ok_requests', 1) == 0:
                    raise RuntimeError('every warm-up request failed (%s); service log: %s'
                                       % (warm['errors'], self.service.log_tail(5)))
            if scenario.key == 'history':
                record['history_rows_per_answer'] = self._history_rows_sample()
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
        record['service_log_errors'] = _count_error_lines(log_path)
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
        record['errors'] = wrk_errors
        return record


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
