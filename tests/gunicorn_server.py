"""The real service under gunicorn, for end-to-end tests and the bank workload."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _admin_key(database_url, name):
    from balance_api.storage.db import migrate, open_database
    db = open_database(database_url)
    try:
        with db.connection_context():
            migrate(db)
        return create_key_in(db, name, ['admin'])
    finally:
        if hasattr(db, 'close_all'):
            db.close_all()


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def bearer(token):
    return {'Authorization': 'Bearer ' + token}


def create_key_in(db, name, permits, uid=None):
    """Create a key straight in the database; returns its token."""
    from balance_api.auth import keys
    from balance_api.auth.models import ApiKey
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        # This database, whatever the application's models are bound to now.
        with db.bind_ctx([ApiKey]):
            return keys.create_key(db, name, permits, uid=uid)
    finally:
        if opened:
            db.close()


class Server:
    """The real service under gunicorn, started with ``python -m balance_api serve``.

    An admin key is made for it before it starts (so it makes no bootstrap
    key): ``session()`` sends it, ``headers`` holds it.
    """

    def __init__(self, database_url, workers=3, extra_env=None, admin_key=True):
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.headers = {}
        if admin_key:
            self.headers = bearer(_admin_key(database_url, 'server-%d' % self.port))
        env = {**os.environ, 'DATABASE_URL': database_url, **(extra_env or {})}
        # A file, not a pipe: nobody reads the log while the server runs.
        # The access log (stdout) and the error log (stderr) both go there.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'balance_api', 'serve', '--port', str(self.port),
             '--workers', str(workers)],
            cwd=ROOT, env=env, stdout=self.log, stderr=self.log)
        self.workers = workers
        self._wait_ready()

    def session(self):
        """A requests session that sends the server's admin key."""
        session = requests.Session()
        session.headers.update(self.headers)
        return session

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode('utf-8', 'replace')

    # What answers 200 once the server serves: /ready also needs the schema.
    ready_path = '/ready'

    def _wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('server exited: %s' % self.log_text())
            try:
                # Every worker booted, not only the first that answers.
                if (requests.get(self.url + self.ready_path, timeout=1).status_code == 200
                        and len(self.worker_pids()) >= self.workers):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError('server did not become ready in %ds' % timeout)

    def worker_pids(self):
        """The gunicorn workers: the children of the master process."""
        pids = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % entry) as handle:
                    fields = handle.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.append(int(entry))
        return pids

    def kill_worker(self, rng):
        """kill -9 one worker at random; gunicorn starts a new one. Returns its pid or None."""
        pids = self.worker_pids()
        if not pids:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
