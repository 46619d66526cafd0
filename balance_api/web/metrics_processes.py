"""The gunicorn master's part in the metrics: the directory its workers count in.

Workers write their metrics to files of their own in the directory
``PROMETHEUS_MULTIPROC_DIR`` names (``balance_api.web.metrics``). The
master prepares it when it starts, before the first fork: the directory
the environment names (made if missing; the files of an earlier run
removed, or they would be added to this one's), else a temporary directory
of its own, in memory where the system has a file system there (every
count is a write to a mapped file: a few microseconds less per request
than on a disk), removed when the server stops. When a worker exits, its live
gauges are dropped; its counters stay, so no sum goes backwards.

A master started by another one (``kill -USR2``, a new binary) leaves the
named directory's files alone: the old master's workers still count there.
gunicorn starts such a master with the environment the first one had, so a
temporary directory is never shared between them.
"""
import glob
import os
import shutil
import tempfile

from .metrics import MULTIPROCESS_DIR_ENVIRON

# The temporary directory this master made, removed when it stops.
_made = []
# Linux's file system in memory, where there is one.
_IN_MEMORY = '/dev/shm'


def prepare(server):
    """gunicorn's on_starting hook."""
    directory = os.environ.get(MULTIPROCESS_DIR_ENVIRON)
    if not directory:
        in_memory = os.path.isdir(_IN_MEMORY) and os.access(_IN_MEMORY, os.W_OK | os.X_OK)
        directory = tempfile.mkdtemp(prefix='balance_api-metrics-',
                                     dir=_IN_MEMORY if in_memory else None)
        _made.append(directory)
        # Inherited by every worker forked from here on.
        os.environ[MULTIPROCESS_DIR_ENVIRON] = directory
        return
    os.makedirs(directory, exist_ok=True)
    if getattr(server, 'master_pid', 0):
        return
    for stale in glob.glob(os.path.join(directory, '*.db')):
        os.remove(stale)


def worker_stopping(server, worker):
    """gunicorn's worker_exit hook: the worker's last counts reach its files."""
    # gunicorn also calls it in the master, for a worker found already gone.
    if os.getpid() == worker.pid:
        from . import metrics
        metrics.publish()


def worker_exited(server, worker):
    """gunicorn's child_exit hook (in the master)."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def remove(server):
    """gunicorn's on_exit hook."""
    while _made:
        shutil.rmtree(_made.pop(), ignore_errors=True)
