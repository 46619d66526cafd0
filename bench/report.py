"""Results: medians and spreads, the table, results.json, RESULTS.md and the chart."""
import json
import statistics

README_START = '<!-- results:start -->'
README_END = '<!-- results:end -->'


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    median = statistics.median(values)
    low, high = min(values), max(values)
    return {
        'median': median, 'min': low, 'max': high,
        'mean': statistics.fmean(values),
        'stdev': statistics.stdev(values) if len(values) > 1 else 0.0,
        # Half the range, relative to the median: "412 req/s ±3%".
        'spread_pct': (high - low) / 2 / median * 100 if median else 0.0,
        'samples': values,
    }


def _compare(value, op, target):
    if op == '==':
        return abs(value - target) < 1e-9
    return value >= target if op == '>=' else value <= target


def _op_text(op):
    return {'>=': '≥', '<=': '≤', '==': '='}[op]


def evaluate(scenarios, records):
    """One row per criterion, with the numbers and whether the target is met."""
    rows = []
    for scenario in scenarios:
        record = records.get(scenario.number)
        if record is None:
            continue
        measurements = record.get('measurements', {})
        for criterion in scenario.criteria:
            service_samples = [criterion.service.pick(s)
                               for s in measurements.get(criterion.service.measurement, [])]
            if criterion.ceiling is not None:
                ceiling_samples = [criterion.ceiling.pick(s)
                                   for s in measurements.get(criterion.ceiling.measurement, [])]
                ceiling_unit = criterion.ceiling.unit
            else:
                ceiling_samples = [criterion.fixed_ceiling] if criterion.fixed_ceiling else []
                ceiling_unit = criterion.service.unit
            service = stats(service_samples)
            ceiling = stats(ceiling_samples)
            ratio = None
            ratios = []
            if service and ceiling and ceiling['median']:
                ratio = service['median'] / ceiling['median']
                if criterion.ceiling is not None:
                    ratios = [s / c for s, c in zip(service_samples, ceiling_samples) if c]
                else:
                    ratios = [s / criterion.fixed_ceiling for s in service_samples]
            row = {
                'scenario': scenario.number,
                'key': criterion.key,
                'label': criterion.label,
                'service': dict(service, unit=criterion.service.unit) if service else None,
                'ceiling': dict(ceiling, unit=ceiling_unit) if ceiling else None,
                'ceiling_text': criterion.fixed_ceiling_text,
                'ratio': ratio,
                'ratio_per_run': ratios,
                'target': {'op': criterion.op, 'value': criterion.target},
                'met': None,
                'checks': {},
                'error': record.get('error'),
            }
            if ratio is not None:
                met = _compare(ratio, criterion.op, criterion.target)
                if criterion.op == '==':
                    # Exact targets hold in every run, not only in the median one.
                    met = met and all(_compare(r, '==', criterion.target) for r in ratios)
                if criterion.checks is not None:
                    checks, held = criterion.checks(
                        measurements.get(criterion.service.measurement, []))
                    row['checks'].update(checks)
                    met = met and held
                if scenario.require_clean:
                    errors = _service_errors(record, criterion.service.measurement)
                    row['checks'].update({'errors': errors, 'deadlocks': record.get('deadlocks')})
                    met = met and errors == 0 and record.get('deadlocks') == 0
                row['met'] = bool(met) and not record.get('error')
            rows.append(row)
    return rows


def _error_total(counts):
    return sum(counts.get(key, 0) for key in ('connect', 'read', 'write', 'status', 'timeout'))


def _service_errors(record, measurement):
    errors = record.get('errors', {})
    total = _error_total(errors.get(measurement, {}))
    if 'warmups' in record:
        # A scenario comparing services: the warm-ups of that figure (its own service).
        return total + sum(_error_total(warm.get('errors', {})) for warm in record['warmups']
                           if warm.get('measurement') == measurement)
    return total + _error_total(errors.get('warmup', {}))


# -- text ----------------------------------------------------------------

def _number(value, unit):
    if value is None:
        return '-'
    if unit in ('ms',):
        return '%.2f ms' % value if value < 10 else '%.1f ms' % value
    if unit == 'MB':
        return '%.1f MB' % value
    if unit == 'spends':
        return '%g spends' % value
    if value >= 100:
        text = '{:,.0f}'.format(value)
    else:
        text = '%.1f' % value
    return '%s %s' % (text, unit)


def figure_text(figure, spread=True):
    if not figure:
        return '-'
    text = _number(figure['median'], figure['unit'])
    if spread and len(figure['samples']) > 1:
        text += ' ±%.0f%%' % figure['spread_pct']
    return text


def ceiling_text(row):
    if row['ceiling_text']:
        return row['ceiling_text']
    return figure_text(row['ceiling'])


def met_text(row):
    if row['error']:
        return 'ERROR'
    if row['met'] is None:
        return '-'
    text = 'yes' if row['met'] else 'NO'
    if row['checks']:
        text += ' (%s)' % ', '.join('%s %s' % item for item in row['checks'].items())
    return text


def table_rows(rows):
    header = ['scenario', 'service figure', 'ceiling', 'ratio', 'target', 'met?']
    body = []
    for row in rows:
        body.append([
            '%d. %s' % (row['scenario'], row['label']),
            figure_text(row['service']),
            ceiling_text(row),
            '-' if row['ratio'] is None else '%.2f' % row['ratio'],
            '%s %s' % (_op_text(row['target']['op']), row['target']['value']),
            met_text(row),
        ])
    return header, body


def text_table(rows):
    header, body = table_rows(rows)
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    lines = [' | '.join(cell.ljust(width) for cell, width in zip(header, widths)),
             '-+-'.join('-' * width for width in widths)]
    lines += [' | '.join(cell.ljust(width) for cell, width in zip(line, widths)) for line in body]
    return '\n'.join(lines)


def markdown_table(rows):
    header, body = table_rows(rows)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(cell.replace('|', '\\|') for cell in line) + ' |'
              for line in body]
    return '\n'.join(lines)


def machine_line(machine):
    pg = machine.get('postgresql_settings', {}).get('server_version') or machine.get('postgresql')
    return '%s, %s cores, %s GiB RAM, PostgreSQL %s, Python %s, Linux %s' % (
        machine['cpu_model'], machine['cores'], machine['memory_gib'], pg,
        machine['python'], machine['kernel'])


def config_line(config):
    span = config.get('seed_span')   # older results files have none
    span_text = ' from %s to %s' % (span['first_day'], span['last_day']) if span else ''
    return ('%d run(s) of %d s per figure (after a %d s warm-up), %d connections, wrk %d '
            'threads, %d gunicorn workers, seed of %s accounts and %s journal rows%s, '
            'pgbench scale %d' % (config['repeat'], config['duration'], config['warmup'],
                                  config['connections'], config['threads'], config['workers'],
                                  '{:,}'.format(config['accounts']),
                                  '{:,}'.format(config['rows']), span_text,
                                  config['pgbench_scale']))


def details(results):
    """Per-scenario facts beyond the table, as markdown bullet lines."""
    lines = []
    for record in results['scenarios']:
        facts = []
        if record.get('error'):
            facts.append('error: %s' % record['error'])
        measurements = record.get('measurements', {})
        errors = record.get('errors', {})
        for name, counts in sorted(errors.items()):
            total = sum(counts.get(k, 0) for k in ('connect', 'read', 'write', 'status', 'timeout'))
            if name == 'warmup':
                facts.append('warm-up errors %d' % total)
            else:
                facts.append('%s: %s non-2xx, %s socket errors over %s requests' % (
                    name, counts.get('status', 0), total - counts.get('status', 0),
                    '{:,}'.format(sum(s['requests'] for s in measurements.get(name, [])))))
        if record['number'] in (1, 2, 3, 7, 8, 9, 10):
            facts.append('deadlocks %s' % record.get('deadlocks'))
        if record.get('service_order'):
            facts.append('services per run: %s' % ' / '.join(
                ' then '.join(order) for order in record['service_order']))
            for name, samples in measurements.items():
                if samples and 'ok_rps' in samples[0]:
                    facts.append('%s per run %s req/s' % (name, ', '.join(
                        '{:,.0f}'.format(s['ok_rps']) for s in samples)))
                cpu = [s.get('worker_cpu_ms_per_request') for s in samples]
                if cpu and None not in cpu:
                    facts.append('%s workers\' CPU per request %s ms' % (
                        name, ', '.join('%.2f' % c for c in cpu)))
        for prefix, probe in sorted(record.get('service_probes', {}).items()):
            facts.append('%s: GET %s without a key %s%s' % (
                prefix, probe['path'], probe['keyless_status'],
                ', with the key %s' % probe['keyed_status'] if probe['keys']
                else ' (X-Balance-Auth: %s)' % probe['x_balance_auth']))
        if record.get('service_log_errors'):
            facts.append('%d error lines in the service log' % record['service_log_errors'])
        sample = record.get('history_rows_per_answer')
        if sample:
            facts.append('rows per history answer: mean %.1f, max %d (%d empty of %d)' % (
                sample['mean_rows'], sample['max_rows'], sample['empty'], sample['requests']))
        busy = record.get('busy_account')
        if busy:
            facts.append('busy account %d: %s postings of %s (%.1f%%), on one side of %.1f%% of '
                         '%s entries, journal ids %s to %s, loaded in %.1f s; the seed\'s hot '
                         'account %d holds %s postings' % (
                             busy['account'], '{:,}'.format(busy['postings']),
                             '{:,}'.format(busy['all_postings']), 100 * busy['posting_share'],
                             100 * busy['entry_share'], '{:,}'.format(busy['all_entries']),
                             busy['first_journal_id'], busy['last_journal_id'], busy['seconds'],
                             busy['hot_account'], '{:,}'.format(busy['hot_account_postings'])))
        for name, sample in sorted((record.get('history_uid_rows_per_answer') or {}).items()):
            facts.append('rows per %s answer: mean %.1f, min %d, max %d (%d empty of %d, all 200)'
                         % (name, sample['mean_rows'], sample['min_rows'], sample['max_rows'],
                            sample['empty'], sample['requests']))
        for stream in measurements.get('stream', [])[:1]:
            facts.append('streamed %s rows, %.0f MB of JSON' % ('{:,}'.format(stream['rows']),
                                                                stream['bytes'] / 1e6))
        if measurements.get('stream'):
            streams = measurements['stream']
            facts.append('worker RSS idle %.1f MB, peak %.1f MB (sampled VmRSS max %.1f, '
                         'VmHWM max %s)' % (
                             streams[0]['idle_rss_mb'],
                             max(s['peak_rss_mb'] for s in streams),
                             max(s['sampled_peak_rss_mb'] for s in streams),
                             '-' if streams[0]['hwm_peak_rss_mb'] is None else '%.1f' % max(
                                 s['hwm_peak_rss_mb'] for s in streams)))
        exports = measurements.get('export', [])
        for format in ('csv', 'jsonl') if exports else ():
            runs = [sample[format] for sample in exports]
            first = runs[0]
            text = '%s export: %s rows, %.0f MB, first byte %s s, worker RSS idle %.1f MB, ' \
                'peak %.1f MB (sampled VmRSS max %.1f, VmHWM max %s)' % (
                    'CSV' if format == 'csv' else 'JSON Lines', '{:,}'.format(first['rows']),
                    first['bytes'] / 1e6, ', '.join('%.3f' % r['first_byte_s'] for r in runs),
                    first['idle_rss_mb'], max(r['peak_rss_mb'] for r in runs),
                    max(r['sampled_peak_rss_mb'] for r in runs),
                    '-' if first['hwm_peak_rss_mb'] is None else '%.1f' % max(
                        r['hwm_peak_rss_mb'] for r in runs))
            if 'manifest' in first:
                text += '; manifest rows %s, %s accounts, signature %s' % (
                    '{:,}'.format(first['manifest']['rows']), '{:,}'.format(
                        first['manifest']['accounts']),
                    'valid' if all(r['manifest']['signature_valid'] for r in runs)
                    else 'INVALID')
            facts.append(text)
        for sample in measurements.get('overspend', []):
            facts.append('overspend on member %d: %d of %d spends of %d points served, %d '
                         'refused (605), other answers %s, %d points drawn, balance %s before '
                         'and %s after, %.2f s' % (
                             sample['member'], sample['ok'], sample['spends'],
                             sample['points_each'], sample['refused'], sample['other'] or 'none',
                             sample['points_drawn'], _points_text(sample['balance_before']),
                             _points_text(sample['balance_after']), sample['seconds']))
        for name, samples in measurements.items():
            # The service's wrk figures (wrk's samples are the ones with latencies).
            if (samples and name in _service_measurements(record)
                    and 'latency_us' in samples[0]):
                p50 = statistics.median(s['latency_us']['p50'] for s in samples) / 1000
                p99 = statistics.median(s['latency_us']['p99'] for s in samples) / 1000
                facts.append('%s latency p50 %.1f ms, p99 %.1f ms' % (name, p50, p99))
        lines.append('- **%d. %s**: %s' % (record['number'], record['title'],
                                           '; '.join(facts) or 'no notes'))
    return '\n'.join(lines)


def _points_text(balances):
    return '{%s}' % ', '.join('%s: %s' % item for item in balances.items())


def _service_measurements(record):
    return record.get('service_measurements', [])


def _loads(values):
    return ', '.join(str(v) for v in values) if values else 'unknown'


def markdown(results, chart_name):
    rows = results['rows']
    met = sum(1 for row in rows if row['met'])
    parts = [
        '# Benchmark results',
        '',
        'Measured %s with `%s`.' % (results['machine']['date'], results['command']),
        '',
        '- Machine: %s.' % machine_line(results['machine']),
        '- Load average (1, 5, 15 min) at start: %s; at the end: %s (other work may share '
        'the machine).' % (_loads(results['machine'].get('load_average_at_start')),
                           _loads(results['machine'].get('load_average_at_end'))),
        '- Whole run: %.0f s.' % results['seconds'],
        '- Setup: %s.' % config_line(results['config']),
        '- Service: %s.' % (results['machine'].get('git_commit') or 'unknown commit'),
        '- Figures are medians over the runs; ± is half the range between the lowest and the '
        'highest run, relative to the median. The ratio is median service / median ceiling.',
        '',
        markdown_table(rows),
        '',
        '%d of %d targets met.' % (met, len(rows)),
        '',
        '![ratio to ceiling per scenario](%s)' % chart_name,
        '',
        '## Details',
        '',
        details(results),
        '',
    ]
    return '\n'.join(parts)


# -- files -----------------------------------------------------------------

def write_json(results, path):
    with open(path, 'w') as handle:
        json.dump(results, handle, indent=2, default=str)
        handle.write('\n')


def chart(rows, path, title):
    """Horizontal bars: each criterion's ratio, its target marked; green met, red missed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row['ratio'] is not None]
    if not shown:
        return False
    labels = ['%d. %s' % (row['scenario'], row['label']) for row in shown][::-1]
    ratios = [row['ratio'] for row in shown][::-1]
    targets = [row['target']['value'] for row in shown][::-1]
    ops = [row['target']['op'] for row in shown][::-1]
    colors = ['#3a9a4a' if row['met'] else '#c8423b' for row in shown][::-1]
    limit = max(ratios + targets) * 1.45

    figure, axis = plt.subplots(figsize=(9, 0.55 * len(shown) + 1.6))
    positions = range(len(shown))
    axis.barh(positions, ratios, color=colors, height=0.6)
    for y, ratio, target, op in zip(positions, ratios, targets, ops):
        axis.plot([target, target], [y - 0.4, y + 0.4], color='black', linewidth=2)
        axis.text(max(ratio, target) + limit * 0.015, y, '%.2f  (target %s %g)' % (
            ratio, _op_text(op), target), va='center', fontsize=8)
    axis.set_yticks(list(positions))
    axis.set_yticklabels(labels, fontsize=8)
    axis.set_xlim(0, limit)
    axis.set_xlabel('ratio to ceiling (black mark: target; green met, red missed)')
    axis.set_title(title, fontsize=9)
    axis.grid(axis='x', alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def update_readme(path, block):
    """Replace the text between the results markers of a README."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return False
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    text = text[:start + len(README_START)] + '\n' + block.strip() + '\n' + text[end:]
    with open(path, 'w') as handle:
        handle.write(text)
    return True
