"""The local PostgreSQL server: databases, pgbench, raw COPY and server statistics."""
import os
import re
import subprocess
import time
from urllib.parse import urlparse, urlunparse

import psycopg2
from psycopg2 import sql


class Postgres:
    """One PostgreSQL server, reached as ``postgresql://user@host:port``."""

    def __init__(self, url):
        parsed = urlparse(url)
        self.url = url
        self.host = parsed.hostname or '127.0.0.1'
        self.port = parsed.port or 5432
        self.user = parsed.username or 'postgres'
        self.password = parsed.password

    # -- connections ---------------------------------------------------

    def database_url(self, name):
        """The service's DATABASE_URL for database ``name``."""
        netloc = self.user
        if self.password:
            netloc += ':' + self.password
        netloc += '@%s:%d' % (self.host, self.port)
        return urlunparse(('postgresql', netloc, '/' + name, '', '', ''))

    def connect(self, dbname='postgres', autocommit=True):
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                password=self.password, dbname=dbname)
        conn.autocommit = autocommit
        return conn

    def client_env(self):
        """Environment for psql and pgbench."""
        env = dict(os.environ)
        if self.password:
            env['PGPASSWORD'] = self.password
        return env

    def client_args(self, dbname):
        return ['-h', self.host, '-p', str(self.port), '-U', self.user, '-d', dbname]

    def scalar(self, query, params=None, dbname='postgres'):
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                row = cur.fetchone()
                return row[0] if row else None
        finally:
            conn.close()

    # -- databases -----------------------------------------------------

    def version(self):
        return self.scalar('SELECT version()')

    def exists(self, name):
        return bool(self.scalar('SELECT 1 FROM pg_database WHERE datname = %s', (name,)))

    def create(self, name, template=None):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                if template is None:
                    cur.execute(sql.SQL('CREATE DATABASE {}').format(sql.Identifier(name)))
                    return
                statement = sql.SQL('CREATE DATABASE {} TEMPLATE {}').format(
                    sql.Identifier(name), sql.Identifier(template))
                try:
                    # FILE_COPY (PostgreSQL 15+) copies files instead of logging
                    # every page: much faster for a large template.
                    cur.execute(statement + sql.SQL(' STRATEGY FILE_COPY'))
                except psycopg2.errors.SyntaxError:
                    cur.execute(statement)
        finally:
            conn.close()

    def benchmark_databases(self):
        """The databases the harness makes: bench_seed_*, bench_pgbench_*, bench_run_*, bench_cost_*."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE datname ~ "
                            "'^bench_(seed|pgbench|run|cost)_' ORDER BY datname")
                return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()

    def drop(self, name):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(
                    sql.Identifier(name)))
        finally:
            conn.close()

    def rename(self, old, new):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(
                    sql.Identifier(old), sql.Identifier(new)))
        finally:
            conn.close()

    def size_bytes(self, name):
        return self.scalar('SELECT pg_database_size(%s)', (name,))

    # -- statistics ----------------------------------------------------

    def deadlocks(self, name):
        """pg_stat_database.deadlocks for one database (cumulative)."""
        # Backends publish their counters when they go idle or exit; callers
        # read this with the service stopped, so every backend has exited.
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT pg_stat_clear_snapshot()')
                cur.execute('SELECT deadlocks FROM pg_stat_database WHERE datname = %s', (name,))
                row = cur.fetchone()
                return int(row[0]) if row else 0
        finally:
            conn.close()

    def wait_for_backends_to_exit(self, name, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.scalar('SELECT count(*) FROM pg_stat_activity WHERE datname = %s', (name,))
            if not count:
                return True
            time.sleep(0.1)
        return False

    def wait_for_idle(self, name, timeout=10.0):
        """Wait until no backend of database ``name`` runs a statement or holds a
        transaction open (a request its client gave up on is still running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid()", (name,))
            if not count:
                return True
            time.sleep(0.05)
        return False

    # -- pgbench -------------------------------------------------------

    def pgbench_ready(self, name, scale):
        if not self.exists(name):
            return False
        try:
            branches = self.scalar('SELECT count(*) FROM pgbench_branches', dbname=name)
        except psycopg2.Error:
            return False
        return branches == scale

    def pgbench_init(self, name, scale, log):
        """A pgbench database of ``scale`` (kept between runs)."""
        if self.pgbench_ready(name, scale):
            return False
        self.drop(name)
        self.create(name)
        subprocess.run(['pgbench', '-i', '-q', '-s', str(scale)] + self._pgbench_conn(name),
                       env=self.client_env(), check=True, stdout=log, stderr=subprocess.STDOUT)
        return True

    def _pgbench_conn(self, name):
        return ['-h', self.host, '-p', str(self.port), '-U', self.user, name]

    def pgbench_run(self, name, clients, threads, duration, log, script=None, variables=None):
        """pgbench for ``duration`` seconds, built-in TPC-B-like or the custom ``script``
        (a file, run with prepared statements and ``-D`` ``variables``); returns tps
        (no connection time)."""
        if script is None:
            workload = ['-b', 'tpcb-like']
        else:
            workload = ['-f', script, '-M', 'prepared', '-n']
            workload += ['-D%s=%s' % item for item in sorted((variables or {}).items())]
        result = subprocess.run(
            ['pgbench'] + workload + ['-c', str(clients), '-j', str(threads),
                                      '-T', str(max(1, int(round(duration))))]
            + self._pgbench_conn(name),
            env=self.client_env(), capture_output=True, text=True)
        log.write((result.stdout + result.stderr).encode())
        log.flush()
        if result.returncode != 0:
            raise RuntimeError('pgbench failed: %s' % result.stderr.strip()[-500:])
        match = re.search(r'tps = ([0-9.]+) \(without initial connection time\)', result.stdout)
        if not match:
            raise RuntimeError('no tps in pgbench output: %s' % result.stdout[-500:])
        failed = re.search(r'number of failed transactions: (\d+)', result.stdout)
        processed = re.search(r'number of transactions actually processed: (\d+)', result.stdout)
        return {
            'tps': float(match.group(1)),
            'transactions': int(processed.group(1)) if processed else None,
            'failed': int(failed.group(1)) if failed else 0,
        }

    # -- raw COPY ------------------------------------------------------

    def copy_out(self, name, query, chunk=1 << 20):
        """``COPY (query) TO STDOUT`` through psql, read and counted here.

        Returns (rows, bytes, seconds). The rows are counted as they arrive,
        as the service's client counts its rows, so both sides pay for reading.
        """
        command = ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1'] + self.client_args(name) + [
            '-c', 'COPY (%s) TO STDOUT' % query]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=self.client_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        rows = size = 0
        while True:
            data = process.stdout.read(chunk)
            if not data:
                break
            rows += data.count(b'\n')
            size += len(data)
        stderr = process.stderr.read()
        process.wait()
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError('psql COPY failed: %s' % stderr.decode(errors='replace')[-500:])
        return rows, size, elapsed
