"""The service under test: ``python -m balance_api serve`` on a free loopback port."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_workers():
    """The worker count ``serve`` picks when given none (the production default)."""
    try:
        from balance_api.web.server import default_workers as service_default
        return service_default()
    except Exception:  # the service's rule is 2 x cores + 1
        return 2 * (os.cpu_count() or 1) + 1


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _status_kib(pid, field):
    """A ``VmRSS``/``VmHWM``-style field of /proc/<pid>/status, in KiB (None if gone)."""
    try:
        with open('/proc/%d/status' % pid) as handle:
            for line in handle:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


_CLOCK_TICKS = os.sysconf('SC_CLK_TCK')


def _cpu_seconds(pid):
    """User + system CPU time of a process from /proc/<pid>/stat, in seconds (None if gone)."""
    try:
        with open('/proc/%d/stat' % pid) as handle:
            fields = handle.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def _admin_key(database_url):
    """A new admin key in the service's database; returns its token."""
    from balance_api.auth import keys
    from balance_api.auth.models import ApiKey
    from balance_api.storage.db import open_database
    db = open_database(database_url)
    try:
        with db.connection_context(), db.bind_ctx([ApiKey]):
            return keys.create_key(db, 'bench-%d-%d' % (os.getpid(), time.time_ns()),
                                   ['admin'])
    finally:
        if hasattr(db, 'close_all'):
            db.close_all()


class Service:
    """gunicorn running the app against ``database_url``; a context manager."""

    def __init__(self, database_url, workers, log_path, python=sys.executable, env=None,
                 ready_timeout=300):
        self.database_url = database_url
        self.workers = workers
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.log_path = log_path
        self.python = python
        self.env = {**os.environ, **(env or {}), 'DATABASE_URL': database_url}
        self.ready_timeout = ready_timeout
        self.process = None
        # Whether the service asks for keys (BALANCE_API_AUTH, read as the service reads it).
        from balance_api.config import auth_setting
        self.keys = auth_setting(self.env.get('BALANCE_API_AUTH'))
        # The admin key every measurement sends (made once the schema is migrated);
        # None when keys are off: then nothing is sent.
        self.token = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._log = open(self.log_path, 'ab')
        # The access log (stdout) is part of the production setup: written, not kept.
        self.process = subprocess.Popen(
            [self.python, '-m', 'balance_api', 'serve', '--host', '127.0.0.1',
             '--port', str(self.port), '--workers', str(self.workers)],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('the service exited during start; see %s' % self.log_path)
            try:
                with urllib.request.urlopen(self.url + '/ready', timeout=2) as answer:
                    if answer.status == 200 and len(self.worker_pids()) >= self.workers:
                        if self.keys:
                            self.token = self.token or _admin_key(self.database_url)
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError('the service was not ready within %d s' % self.ready_timeout)

    def worker_pids(self):
        """The gunicorn workers: the children of the master process."""
        if self.process is None:
            return []
        try:
            with open('/proc/%d/task/%d/children' % (self.process.pid, self.process.pid)) as f:
                return [int(pid) for pid in f.read().split()]
        except OSError:
            pass
        pids = []
        for entry in os.listdir('/proc'):
            if entry.isdigit():
                try:
                    with open('/proc/%s/stat' % entry) as handle:
                        fields = handle.read().rsplit(')', 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    pids.append(int(entry))
        return pids

    def reset_peak_rss(self):
        """Restart each worker's VmHWM from its current RSS (Linux clear_refs 5)."""
        done = True
        for pid in self.worker_pids():
            try:
                with open('/proc/%d/clear_refs' % pid, 'w') as handle:
                    handle.write('5')
            except OSError:
                done = False
        return done

    def peak_rss_kib(self):
        """{pid: VmHWM} of every worker."""
        return {pid: _status_kib(pid, 'VmHWM') for pid in self.worker_pids()}

    def cpu_seconds(self):
        """{pid: user + system CPU seconds} of every worker (None if gone)."""
        return {pid: _cpu_seconds(pid) for pid in self.worker_pids()}

    def rss_kib(self):
        return {pid: _status_kib(pid, 'VmRSS') for pid in self.worker_pids()}

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._log.close()

    @property
    def headers(self):
        """The headers that carry the key ({} when keys are off)."""
        return {'Authorization': 'Bearer ' + self.token} if self.token else {}

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, 'rb') as handle:
                return b'\n'.join(handle.read().splitlines()[-lines:]).decode(errors='replace')
        except OSError:
            return ''


class RssSampler:
    """Samples the workers' VmRSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, service, interval=0.02):
        self.service = service
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='rss-sampler', daemon=True)
        self._pids = service.worker_pids()

    def _run(self):
        while not self._stop.is_set():
            for pid in self._pids:
                value = _status_kib(pid, 'VmRSS')
                if value and value > self.peak_kib:
                    self.peak_kib = value
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
