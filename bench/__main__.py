"""``python -m bench``: seed, start, measure and report every scenario with one command.

Run it from the repository root with the project's virtualenv python:

    .venv/bin/python -m bench              # everything: 3 runs of 10 s per figure
    .venv/bin/python -m bench --quick      # a short smoke run on a small seed
    .venv/bin/python -m bench --scenarios 1,2 --repeat 5 --duration 20
"""
import argparse
import datetime
import importlib
import json
import os
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

try:
    import psycopg2  # noqa: F401
    import balance_api.money.chain  # noqa: F401
except ImportError as missing:
    sys.exit('python -m bench needs the project\'s virtualenv (%s): run it as '
             '.venv/bin/python -m bench from the repository root' % missing)

from bench import machine, report, runner, service  # noqa: E402

DEFAULT_PG = os.environ.get('BENCH_PG_URL', 'postgresql://postgres@127.0.0.1:5432')
QUICK = {'repeat': 1, 'duration': 2, 'warmup': 1, 'accounts': 1000, 'rows': 20_000}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m bench',
        description='Benchmark balance_api against ceilings measured on the same machine.')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 1 run of 2 s per figure on a seed of 1,000 accounts and '
                             '20,000 rows (verified); writes only to the output directory')
    parser.add_argument('--scenarios', default='all',
                        help='comma-separated numbers or names: 1 transfers, 2 hot-account, '
                             '3 add-sub, 4 balance, 5 history, 6 stream, 7 points, '
                             '8 points-depth, 9 points-overspend, 10 auth, 11 export, '
                             '12 history-uid, 13 discounts (default: all)')
    parser.add_argument('--repeat', type=int, help='runs per figure (default 3)')
    parser.add_argument('--duration', type=float, help='seconds per wrk/pgbench run (default 10)')
    parser.add_argument('--warmup', type=float, help='seconds of warm-up per scenario (default 2)')
    parser.add_argument('--connections', type=int, default=16,
                        help='wrk connections and pgbench clients (default 16)')
    parser.add_argument('--threads', type=int, default=min(os.cpu_count() or 2, 4),
                        help='wrk and pgbench threads (default: cores, at most 4)')
    parser.add_argument('--workers', type=int, default=0,
                        help="gunicorn workers (default: the service's own default, "
                             "2 x cores + 1)")
    parser.add_argument('--accounts', type=int, help='seeded users (default 10,000)')
    parser.add_argument('--rows', type=int,
                        help='seeded journal rows (default 1,000,000), one year of them per '
                             '1,000,000 (nearest whole year, at least one) ending 2024-12-31')
    parser.add_argument('--big', action='store_true',
                        help='seed 10,000,000 journal rows over 2015-2024 instead (about 10 '
                             'minutes, ~6 GB)')
    parser.add_argument('--reseed', action='store_true',
                        help='rebuild the seeded database even if it exists')
    parser.add_argument('--verify-seed', action='store_true', default=None,
                        help='run python -m balance_api verify on the seed (automatic for new '
                             'seeds of at most 200,000 rows)')
    parser.add_argument('--pgbench-scale', type=int, default=10,
                        help='pgbench -i -s scale of the ceiling database (default 10)')
    parser.add_argument('--pg', default=DEFAULT_PG,
                        help='PostgreSQL server as postgresql://user@host:port '
                             '(default $BENCH_PG_URL or %(default)s)')
    parser.add_argument('--output', default=os.path.join(HERE, 'results'),
                        help='where results.json, RESULTS.md, chart.png and logs go '
                             '(default bench/results)')
    publish = parser.add_mutually_exclusive_group()
    publish.add_argument('--publish', dest='publish', action='store_true', default=None,
                         help='also write bench/RESULTS.md, bench/chart.png and the README table')
    publish.add_argument('--no-publish', dest='publish', action='store_false',
                         help='never touch bench/RESULTS.md, bench/chart.png, bench/README.md')
    parser.add_argument('--render', metavar='RESULTS_JSON',
                        help='measure nothing: print the table and rewrite RESULTS.md and the '
                             'chart from a results.json')
    parser.add_argument('--drop-databases', action='store_true',
                        help='measure nothing: drop every benchmark database on the server '
                             '(seeds and pgbench databases are otherwise kept for the next run)')
    parser.add_argument('--keep-run-db', action='store_true',
                        help='keep the run database afterwards (it is dropped by default)')
    args = parser.parse_args(argv)

    defaults = {'repeat': 3, 'duration': 10.0, 'warmup': 2.0, 'accounts': 10_000,
                'rows': 1_000_000}
    if args.quick:
        defaults.update(QUICK)
    if args.big:
        defaults['rows'] = 10_000_000
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.repeat < 1 or args.duration < 1 or args.connections < 1:
        parser.error('--repeat, --duration and --connections must be at least 1')
    args.workers = args.workers or service.default_workers()
    try:
        args.selected = runner.select_scenarios(args.scenarios)
    except ValueError as exc:
        parser.error(str(exc))
    if args.publish is None and not args.render:
        # Only a full, standard run replaces the committed summary.
        args.publish = not args.quick and len(args.selected) == len(runner.SCENARIOS)
    return args


def chart_library_present(say):
    """Whether matplotlib is importable; the harness installs nothing into the
    interpreter it runs in (the chart is the only thing that needs it)."""
    try:
        importlib.import_module('matplotlib')
        return True
    except ImportError:
        say('no chart this time: matplotlib is not installed '
            '(.venv/bin/pip install -r bench/requirements.txt)')
        return False


def drop_databases(url, say):
    """Drop every database the harness makes (seeds, pgbench, runs)."""
    from bench.pg import Postgres
    server = Postgres(url)
    names = server.benchmark_databases()
    for name in names:
        server.drop(name)
        say('dropped %s' % name)
    if not names:
        say('no benchmark database on the server')
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.perf_counter()

    def say(text):
        print(text, flush=True)

    if args.render:
        return render(args.render, args, say)
    if args.drop_databases:
        return drop_databases(args.pg, say)

    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    os.makedirs(args.output, exist_ok=True)
    args.log_dir = os.path.join(args.output, 'logs', stamp)
    has_chart = chart_library_present(say)

    bench = runner.Bench(args, say)
    records = {}
    try:
        bench.check_tools()
        about = machine.describe(bench.pg, ROOT)
        say('machine: %s' % report.machine_line(about))
        bench.prepare(args.selected)
        for scenario in args.selected:
            say('%d. %s' % (scenario.number, scenario.title))
            records[scenario.number] = bench.run_scenario(scenario)
    except (RuntimeError, OSError, psycopg2.Error, subprocess.CalledProcessError) as exc:
        say('python -m bench: cannot run: %s' % str(exc).strip())
        say('logs: %s' % os.path.relpath(args.log_dir, ROOT))
        return 2
    finally:
        bench.cleanup()
    about['load_average_at_end'] = machine.load_average()

    config = {key: getattr(args, key) for key in (
        'repeat', 'duration', 'warmup', 'connections', 'threads', 'workers', 'accounts', 'rows',
        'pgbench_scale', 'quick')}
    config['scenarios'] = [s.number for s in args.selected]
    config['seed_span'] = {'first_day': str(bench.spec.first_day),
                           'last_day': str(bench.spec.last_day), 'years': bench.spec.years}
    rows = report.evaluate(args.selected, records)
    results = {
        'command': 'python -m bench' + (' ' + ' '.join(shlex.quote(a) for a in argv)
                                        if argv else ''),
        'machine': about,
        'config': config,
        'prepared': bench.prepared,
        'rows': rows,
        'scenarios': [records[s.number] for s in args.selected],
        'seconds': round(time.perf_counter() - started, 1),
    }

    json_path = os.path.join(args.output, 'results.json')
    report.write_json(results, json_path)
    write_outputs(results, args.output, args.publish, has_chart, say, [json_path])
    failed = [r for r in records.values() if r.get('error')]
    return 1 if failed else 0


def write_outputs(results, output, publish, has_chart, say, written=()):
    """Print the table; write RESULTS.md and chart.png (and, to publish, the committed copies)."""
    rows, about, config = results['rows'], results['machine'], results['config']
    say('')
    say(report.text_table(rows))
    say('')
    say('%d of %d targets met in %.0f s' % (sum(1 for r in rows if r['met']), len(rows),
                                           results['seconds']))
    written = list(written)
    chart_title = 'balance_api: ratio to ceiling (%s)' % about['date']
    summary = report.markdown(results, 'chart.png')
    targets = [output] + ([HERE] if publish else [])
    for folder in targets:
        path = os.path.join(folder, 'RESULTS.md')
        with open(path, 'w') as handle:
            handle.write(summary)
        written.append(path)
        if has_chart and report.chart(rows, os.path.join(folder, 'chart.png'), chart_title):
            written.append(os.path.join(folder, 'chart.png'))
    if publish:
        block = '\n'.join([
            'Measured %s: %s.' % (about['date'], report.machine_line(about)),
            '%s.' % report.config_line(config),
            '',
            report.markdown_table(rows),
        ])
        if report.update_readme(os.path.join(HERE, 'README.md'), block):
            written.append(os.path.join(HERE, 'README.md'))
    say('wrote ' + ', '.join(os.path.relpath(p, ROOT) for p in written))


def render(path, args, say):
    """Re-render the table, RESULTS.md and the chart from a results.json."""
    with open(path) as handle:
        results = json.load(handle)
    publish = args.publish
    if publish is None:
        config = results['config']
        publish = not config.get('quick') and len(config['scenarios']) == len(runner.SCENARIOS)
    os.makedirs(args.output, exist_ok=True)
    write_outputs(results, args.output, publish, chart_library_present(say), say)
    return 0


if __name__ == '__main__':
    sys.exit(main())
