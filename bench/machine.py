"""What the numbers were measured on."""
import datetime
import os
import platform
import subprocess

from . import wrk


def _cpu_model():
    try:
        with open('/proc/cpuinfo') as handle:
            for line in handle:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _memory_bytes():
    try:
        with open('/proc/meminfo') as handle:
            for line in handle:
                if line.startswith('MemTotal:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def load_average():
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _command_output(command, cwd=None):
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def describe(pg, root):
    memory = _memory_bytes()
    settings = {}
    for name in ('server_version', 'max_connections', 'shared_buffers', 'synchronous_commit',
                 'fsync', 'wal_level', 'work_mem'):
        try:
            settings[name] = pg.scalar('SHOW %s' % name)
        except Exception:
            settings[name] = None
    commit = _command_output(['git', 'rev-parse', '--short', 'HEAD'], cwd=root)
    dirty = _command_output(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root)
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC'),
        'cpu_model': _cpu_model(),
        'cores': os.cpu_count(),
        'memory_gib': round(memory / 2 ** 30, 1) if memory else None,
        'kernel': platform.release(),
        'python': platform.python_version(),
        'postgresql': pg.version(),
        'postgresql_settings': settings,
        'pgbench': _command_output(['pgbench', '--version']),
        'wrk': wrk.version(),
        'git_commit': (commit + ('+changes' if dirty else '')) if commit else None,
        'load_average_at_start': load_average(),
    }
