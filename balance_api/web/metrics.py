"""What the service counts for Prometheus, and the text ``/metrics`` answers with.

Each gunicorn worker counts in its own process, and ``/metrics`` must
show them all, whichever worker answers. So each worker writes its values
to files of its own in the directory ``PROMETHEUS_MULTIPROC_DIR`` names
(prometheus_client's multiprocess mode), which the server prepares before
it forks them (``balance_api.web.metrics_processes``), and the page adds
up every file: the counts of workers that have exited stay in the sums, so
no counter goes backwards when a worker is replaced. Without that
variable (the application in-process, a command) the values live in the
process's memory.

Counting is on every request's path, and there a prometheus_client
increment costs several times what adding to a dictionary does (more in
multiprocess mode, where each is a locked write to a mapped file). So a
request only adds to plain numbers of its thread (``counts``), and
``publish`` adds what they gained to prometheus_client counters: before
``/metrics`` answers, and in a gunicorn worker every ``PUBLISH_EVERY``
seconds from a thread of its own and when it exits
(``balance_api.web.server``). A scrape may so miss the last second of
another worker's counts, and a worker killed outright loses at most that
second. Latencies are counted by bucket the same way and shown as the
histogram they are (``_LatencyHistogram``).

prometheus_client chooses between memory and files when it is first
imported, so it is imported when the metrics are first used, not with this
module: the gunicorn master imports the application's modules before it has
named the directory for its workers.

Domains count what they changed with ``after_commit``: a change counts once
its transaction has committed, so one rolled back (with the Idempotency-Key
claim or the batch it was part of) never does. Money is added up in
Decimal and becomes a float only when published: exact enough for rates
and dashboards, never for accounting.
"""
import bisect
import functools
import logging
import os
import threading
import time

log = logging.getLogger('balance_api')

MULTIPROCESS_DIR_ENVIRON = 'PROMETHEUS_MULTIPROC_DIR'
# The route label of requests no route template matched: unknown paths,
# the documentation's static assets, refusals made before routing.
NO_ROUTE = '(none)'
# A sync worker answers in about a millisecond; exports stream for longer.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
# Each bucket's upper bound as its "le" label reads; the last one is the rest.
_BUCKET_BOUNDS = tuple(repr(bound) for bound in LATENCY_BUCKETS) + ('+Inf',)
# Seconds a worker's counts may wait before they reach its files.
PUBLISH_EVERY = 1.0

LATENCY = 'balance_api_request_duration_seconds'
LATENCY_HELP = ('Time from the request to its answer being ready (a streamed body is sent '
                'after), by route template and method.')
# The counters, by the name of their counts: (metric, help, label names).
# The latency's two are shown as its histogram, never by these names.
COUNTERS = {
    'requests': ('balance_api_requests', 'Requests answered, by route template, method and '
                 'status.', ('route', 'method', 'status')),
    'latency_observations': ('balance_api_request_latency_observations', 'Latency counts.',
                             ('route', 'method', 'le')),
    'latency_seconds': ('balance_api_request_latency_seconds', 'Latency sums.',
                        ('route', 'method')),
    'database_errors': ('balance_api_database_errors',
                        'Database failures answered 5xx: kind "unavailable" (lost, locked, pool '
                        'exhausted: 503) or "failed" (a statement failed).', ('kind',)),
    'money_moved': ('balance_api_money_moved',
                    'Money moved by committed changes, in the currency unit, by operation '
                    '(deposit, withdrawal, transfer).', ('operation',)),
    'journal_entries': ('balance_api_journal_entries',
                        'Journal entries committed, by the operation the journal records.',
                        ('operation',)),
    'points_granted': ('balance_api_points_granted',
                       'Points granted by committed entries, by event type.', ('event_type',)),
    'points_spent': ('balance_api_points_spent',
                     'Points taken by committed entries (spent, revoked, expired), by event '
                     'type.', ('event_type',)),
    'idempotent_replays': ('balance_api_idempotent_replays',
                           'Requests answered with the stored answer of their Idempotency-Key, '
                           'by route template.', ('route',)),
    'auth_refusals': ('balance_api_auth_refusals',
                      'Requests refused by the key checks, by reason.', ('reason',)),
}


# The counters a request's answer adds to, all from one row of its own.
_ANSWERS = ('requests', 'latency_observations', 'latency_seconds')
# A row: [answers, seconds, answers in each latency bucket...].
_ANSWERED, _SECONDS, _FIRST_BUCKET = 0, 1, 2


class _ThreadCounts(threading.local):
    """One thread's counts since its process started: ``{label values: total}``
    for each counter (a single label's value stands alone, not in a tuple),
    and the answers' rows by (route, method, status) in ``answers``."""

    def __init__(self):
        self.answers = {}
        families = {'answers': self.answers}
        for name in COUNTERS:
            if name not in _ANSWERS:
                families[name] = {}
                setattr(self, name, families[name])
        _every_thread.append((families, {}))


# Each thread's (counts by counter, what of them is published), for publish.
_every_thread = []
counts = _ThreadCounts()


def _add(totals, labels, amount=1):
    totals[labels] = totals.get(labels, 0) + amount


def request_answered(labels, seconds):
    """An answer: ``labels`` are its (route, method, status), ``seconds`` its time."""
    answers = counts.answers
    row = answers.get(labels)
    if row is None:
        row = answers[labels] = [0, 0.0] + [0] * len(_BUCKET_BOUNDS)
    row[_ANSWERED] += 1
    row[_SECONDS] += seconds
    row[_FIRST_BUCKET + bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1


class _LatencyHistogram:
    """A collector of ``source``'s metrics with the latency's counters shown
    as its histogram: buckets cumulative, as Prometheus reads them."""

    _OBSERVATIONS = COUNTERS['latency_observations'][0]
    _SECONDS = COUNTERS['latency_seconds'][0]

    def __init__(self, source):
        self.source = source

    def collect(self):
        from prometheus_client.core import HistogramMetricFamily
        by_bucket, seconds = {}, {}
        for family in self.source.collect():
            if family.name == self._OBSERVATIONS:
                for sample in family.samples:
                    if sample.name.endswith('_total'):
                        key = (sample.labels['route'], sample.labels['method'])
                        found = by_bucket.setdefault(key, {})
                        le = sample.labels['le']
                        found[le] = found.get(le, 0) + sample.value
            elif family.name == self._SECONDS:
                for sample in family.samples:
                    if sample.name.endswith('_total'):
                        key = (sample.labels['route'], sample.labels['method'])
                        seconds[key] = seconds.get(key, 0) + sample.value
            else:
                yield family
        histogram = HistogramMetricFamily(LATENCY, LATENCY_HELP, labels=['route', 'method'])
        for key in sorted(by_bucket):
            observed, cumulative = by_bucket[key], 0
            buckets = []
            for bound in _BUCKET_BOUNDS:
                cumulative += observed.get(bound, 0)
                buckets.append((bound, cumulative))
            histogram.add_metric(list(key), buckets, seconds.get(key, 0.0))
        yield histogram


class _Metrics:
    def __init__(self):
        import prometheus_client
        from prometheus_client import Counter, Gauge

        self.multiprocess = bool(os.environ.get(MULTIPROCESS_DIR_ENVIRON))
        # The multiprocess mode has no *_created series: neither has the other.
        prometheus_client.disable_created_metrics()
        self.content_type = prometheus_client.CONTENT_TYPE_LATEST
        self._generate = prometheus_client.generate_latest
        own = prometheus_client.CollectorRegistry(auto_describe=True)
        if self.multiprocess:
            from prometheus_client import multiprocess
            source = multiprocess.MultiProcessCollector(None)
        else:
            source = own
        self._exposed = prometheus_client.CollectorRegistry()
        self._exposed.register(_LatencyHistogram(source))

        self.counters = {name: Counter(metric, text, labels, registry=own)
                         for name, (metric, text, labels) in COUNTERS.items()}
        # (counter name, label values) -> its child, resolved once.
        self.children = {}
        # 'livesum': a worker counts while it lives; the master forgets the
        # exited ones (balance_api.web.metrics_processes).
        self.workers = Gauge('balance_api_workers', 'gunicorn workers serving.',
                             multiprocess_mode='livesum', registry=own)

    def child(self, name, labels):
        child = self.children.get((name, labels))
        if child is None:
            values = labels if isinstance(labels, tuple) else (labels,)
            child = self.children[(name, labels)] = self.counters[name].labels(
                *(str(value) for value in values))
        return child

    def exposition(self):
        return self._generate(self._exposed)


_built = None
_building = threading.Lock()
_publishing = threading.Lock()


def _metrics():
    global _built
    if _built is None:
        with _building:
            if _built is None:
                _built = _Metrics()
    return _built


def _forget_inherited():
    # A process forked after counting inherits counts that are its parent's.
    for totals, published in _every_thread:
        published.clear()
        for counted in totals.values():
            counted.clear()


os.register_at_fork(after_in_child=_forget_inherited)


def _gains(totals, published):
    """``(labels, gained)`` of each counter in ``totals`` since ``published``, which
    it brings up to date."""
    for name, counted in totals.items():
        done = published.setdefault(name, {})
        # Copies: another thread may be adding to them meanwhile.
        for labels, total in list(counted.items()):
            if name == 'answers':
                total = list(total)
                before = done.get(labels) or [0] * len(total)
                if total != before:
                    done[labels] = total
                    yield from _answer_gains(labels, total, before)
                continue
            gained = total - done.get(labels, 0)
            if gained:
                done[labels] = total
                yield name, labels, gained


def _answer_gains(labels, total, before):
    route_and_method = labels[:2]
    yield 'requests', labels, total[_ANSWERED] - before[_ANSWERED]
    yield 'latency_seconds', route_and_method, total[_SECONDS] - before[_SECONDS]
    for index, bound in enumerate(_BUCKET_BOUNDS, _FIRST_BUCKET):
        if total[index] != before[index]:
            yield ('latency_observations', route_and_method + (bound,),
                   total[index] - before[index])


def publish():
    """Add what this process's threads counted since the last call to the
    counters (in multiprocess mode, to this worker's files)."""
    try:
        with _publishing:
            metrics = _metrics()
            for totals, published in list(_every_thread):
                for name, labels, gained in _gains(totals, published):
                    if gained:
                        # Prometheus keeps doubles. The money-moved counter is a
                        # monitoring figure, never read back as money: the
                        # journal is the record, in Decimal.
                        metrics.child(name, labels).inc(float(gained))
    except Exception:
        # Counting must never fail a request; the counts wait for the next try.
        log.exception('metrics could not be published')


def after_commit(db, count, *args):
    """``count(*args)`` once ``db``'s transaction commits (at once outside
    one: the statement has committed); never if it rolls back."""
    if db.in_transaction():
        db.after_commit(functools.partial(count, *args))
    else:
        count(*args)


# -- what domains count (through after_commit) ---------------------------

def journal_entry_written(operation, moved_as=None, amount=None):
    """A journal entry of ``operation`` (as the journal records it); one that
    moves money counts ``amount`` (a positive Decimal) under ``moved_as``
    (deposit, withdrawal, transfer) too."""
    _add(counts.journal_entries, operation)
    if moved_as is not None:
        _add(counts.money_moved, moved_as, amount)


def points_posted(event_type, points):
    """Points granted (``points`` > 0) or taken (< 0) by one posting."""
    if points > 0:
        _add(counts.points_granted, event_type, points)
    elif points < 0:
        _add(counts.points_spent, event_type, -points)


# -- what the plumbing counts --------------------------------------------

def idempotent_replay(route):
    _add(counts.idempotent_replays, route or NO_ROUTE)


def auth_refused(reason):
    _add(counts.auth_refusals, reason)


def database_error(kind):
    """``kind``: ``unavailable`` (answered 503) or ``failed``."""
    _add(counts.database_errors, kind)


def worker_started():
    """A gunicorn worker is serving (until it exits): it publishes its counts
    every PUBLISH_EVERY seconds, busy or idle."""
    try:
        _metrics().workers.set(1)
    except Exception:
        log.exception('metrics could not be recorded')

    def publish_while_alive():
        while True:
            time.sleep(PUBLISH_EVERY)
            publish()

    threading.Thread(target=publish_while_alive, name='metrics-publisher', daemon=True).start()


def exposition():
    """``(content type, body)``: every worker's metrics in Prometheus's text format."""
    publish()
    metrics = _metrics()
    return metrics.content_type, metrics.exposition()
