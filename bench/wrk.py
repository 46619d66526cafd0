"""wrk: installed on demand (Debian package), run with a Lua script, summary parsed."""
import json
import os
import shutil
import subprocess

LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lua')
SUMMARY_MARK = 'BENCH_JSON '


def ensure_installed(say=print):
    """Return the path of wrk, installing the Debian package if it is missing."""
    path = shutil.which('wrk')
    if path:
        return path
    if os.geteuid() != 0:
        raise RuntimeError('wrk is not installed and this is not root: run apt-get install -y wrk')
    say('wrk is missing: installing the Debian package')
    env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
    install = ['apt-get', 'install', '-y', '-q', 'wrk']
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        # The package lists may be missing or stale.
        subprocess.run(['apt-get', 'update', '-q'], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(install, env=env, check=True, stdout=subprocess.DEVNULL)
    path = shutil.which('wrk')
    if not path:
        raise RuntimeError('apt-get installed wrk but it is not on PATH')
    return path


def version():
    try:
        result = subprocess.run(['wrk', '-v'], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0] if first else None


def run(base_url, script, duration, connections, threads=2, args=(), timeout=10, log=None,
        token=None):
    """Run wrk for ``duration`` seconds; returns the summary of its Lua ``done()`` hook.

    The result adds ``ok_requests`` (2xx/3xx answers), ``ok_rps`` and
    ``errors.total`` (every non-2xx/3xx answer and socket error).
    """
    threads = max(1, min(threads, connections))
    command = ['wrk', '-t%d' % threads, '-c%d' % connections, '-d%ds' % max(1, round(duration)),
               '--timeout', '%ds' % timeout, '--latency',
               '-s', os.path.join(LUA_DIR, script), base_url, '--'] + list(args)
    # The key travels in the environment (common.lua sends it), not on the
    # command line, which the log records.
    env = {**os.environ, 'BENCH_API_TOKEN': token or ''}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if log is not None:
        log.write(('$ %s\n%s%s\n' % (' '.join(command), result.stdout, result.stderr)).encode())
        log.flush()
    summary = None
    for line in result.stdout.splitlines():
        if line.startswith(SUMMARY_MARK):
            summary = json.loads(line[len(SUMMARY_MARK):])
    if result.returncode != 0 or summary is None:
        raise RuntimeError('wrk failed (exit %d): %s' % (
            result.returncode, (result.stderr or result.stdout).strip()[-500:]))
    seconds = summary['duration_us'] / 1e6
    errors = summary['errors']
    errors['total'] = sum(errors[key] for key in ('connect', 'read', 'write', 'status', 'timeout'))
    summary['seconds'] = seconds
    summary['ok_requests'] = summary['requests'] - errors['status']
    summary['ok_rps'] = summary['ok_requests'] / seconds if seconds else 0.0
    summary['rps'] = summary['requests'] / seconds if seconds else 0.0
    summary['connections'] = connections
    summary['threads'] = threads
    return summary
