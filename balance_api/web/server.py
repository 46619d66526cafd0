"""Running the application under gunicorn (never a development server)."""
import multiprocessing
import os

from gunicorn.app.base import BaseApplication

from . import metrics_processes


def default_workers():
    # gunicorn's rule of thumb; sync workers spend their time waiting on the database.
    return 2 * multiprocessing.cpu_count() + 1


def worker_started(worker):
    """gunicorn's post_worker_init hook.

    A long streamed answer keeps the worker's heartbeat going (see
    balance_api.web.streaming.report_progress_to), and a sync worker, which
    serves one request at a time, keeps its database connection between
    requests (balance_api.web.middleware.keep_connections). It counts as
    a live worker in the metrics until it exits, and publishes its counts
    every second (balance_api.web.metrics).
    """
    from gunicorn.workers.sync import SyncWorker

    from . import metrics
    from .middleware import keep_connections
    from .streaming import report_progress_to
    from .worker import ApiSyncWorker
    report_progress_to(worker.notify)
    # Exactly these: a subclass may serve several requests at once.
    keep_connections(type(worker) in (ApiSyncWorker, SyncWorker))
    metrics.worker_started()


# What gunicorn.conf.py and ``python -m balance_api serve`` both start from.
DEFAULTS = {
    # gunicorn's sync worker, refusing malformed requests with the API's JSON errors.
    'worker_class': 'balance_api.web.worker.ApiSyncWorker',
    # A request that makes no progress for this long is stuck (a streamed
    # answer beats while it moves); gunicorn replaces its worker.
    'timeout': 30,
    'graceful_timeout': 30,
    'keepalive': 5,
    # Workers connect after the fork: nothing is shared across processes.
    'preload_app': False,
    # One control socket per user by default: several servers on one machine
    # would take it from each other, and nothing here uses it.
    'control_socket_disable': True,
    'accesslog': '-',
    # The combined log line plus request time and request id, built cheaply;
    # the application's log in the error log's format, one line per record.
    'logger_class': 'balance_api.web.access_log.AccessLogger',
    'errorlog': '-',
    'post_worker_init': worker_started,
    # Every worker's metrics in one directory, prepared before the first
    # fork; a worker's last counts written as it exits, its live gauges
    # dropped once it has (balance_api.web.metrics_processes).
    'on_starting': metrics_processes.prepare,
    'worker_exit': metrics_processes.worker_stopping,
    'child_exit': metrics_processes.worker_exited,
    'on_exit': metrics_processes.remove,
}


class GunicornServer(BaseApplication):
    """gunicorn serving ``app_factory(settings)``, built in each worker after the fork."""

    def __init__(self, options, settings, app_factory):
        self.options = options
        self.settings = settings
        self.app_factory = app_factory
        super().__init__()

    def load_config(self):
        for key, value in {**DEFAULTS, **self.options}.items():
            self.cfg.set(key, value)
        # The logger (balance_api.web.access_log) reads LOG_FORMAT when gunicorn
        # sets it up, as under gunicorn.conf.py: the settings' value, for the
        # master and the workers it forks.
        log_format = getattr(self.settings, 'log_format', None)
        if log_format:
            os.environ['LOG_FORMAT'] = log_format

    def load(self):
        return self.app_factory(self.settings)
