"""gunicorn settings for ``gunicorn -c gunicorn.conf.py wsgi:application``.

``python -m balance_api serve`` uses the same defaults (balance_api/web/server.py).
Sync workers hold one request each: put a buffering reverse proxy in front
of them when clients are slow. Each worker holds up to DB_POOL_SIZE
PostgreSQL connections, so workers x pool size must stay below the
server's max_connections.
"""
import os

from balance_api.web.server import DEFAULTS, default_workers

bind = os.environ.get('BIND', '127.0.0.1:8000')
workers = int(os.environ.get('WEB_CONCURRENCY', default_workers()))
worker_class = DEFAULTS['worker_class']
timeout = DEFAULTS['timeout']
graceful_timeout = DEFAULTS['graceful_timeout']
keepalive = DEFAULTS['keepalive']
preload_app = DEFAULTS['preload_app']
control_socket_disable = DEFAULTS['control_socket_disable']
accesslog = DEFAULTS['accesslog']
logger_class = DEFAULTS['logger_class']
errorlog = DEFAULTS['errorlog']
post_worker_init = DEFAULTS['post_worker_init']
on_starting = DEFAULTS['on_starting']
worker_exit = DEFAULTS['worker_exit']
child_exit = DEFAULTS['child_exit']
on_exit = DEFAULTS['on_exit']
