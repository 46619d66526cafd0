"""Databases of a test's own, with no schema yet: for what migrates, rolls back or
must refuse an unmigrated database (the shared test databases stay migrated)."""
import contextlib
import os
import subprocess
import sys
import uuid
from urllib.parse import urlparse, urlunparse

from balance_api.storage.db import open_database
from gunicorn_server import ROOT


@contextlib.contextmanager
def scratch_database(kind, request, tmp_path):
    """An empty database of ``kind`` (``sqlite``: a file that does not exist yet;
    ``postgresql``: a new database on the test server, dropped afterwards)."""
    if kind == 'sqlite':
        yield 'sqlite:///%s' % (tmp_path / 'scratch.db')
        return
    # The session database's server (skips, or fails in CI, without one).
    server_url = request.getfixturevalue('postgres_url')
    name = 'balance_api_scratch_%s' % uuid.uuid4().hex[:12]
    admin = open_database(server_url)
    admin.connect()
    admin.connection().autocommit = True
    admin.execute_sql('CREATE DATABASE %s' % name)
    try:
        yield urlunparse(urlparse(server_url)._replace(path='/' + name))
    finally:
        admin.execute_sql('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)
        admin.close_all()


def run_command(database_url, *arguments, cwd, timeout=120, extra_env=None):
    """``python -m balance_api ARGUMENTS`` in ``cwd``, with only the environment
    given (no DATABASE_URL when ``database_url`` is None)."""
    env = {'PATH': '/usr/bin:/bin', 'PYTHONPATH': ROOT, **(extra_env or {})}
    if database_url is not None:
        env['DATABASE_URL'] = database_url
    return subprocess.run([sys.executable, '-m', 'balance_api', *arguments], cwd=str(cwd),
                          env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(result):
    """Standard error without the line naming the database, nor log lines."""
    return [line for line in result.stderr.splitlines()
            if not line.startswith('balance_api: database ') and ' INFO ' not in line]


def assert_one_line_error(result, status, *phrases):
    """The command failed with ``status`` and said why in one line, no traceback."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr, result.stderr
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith('balance_api: error: '), result.stderr
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])


def sqlite_path(url):
    return url[len('sqlite:///'):]


def exists(url):
    return os.path.exists(sqlite_path(url))
