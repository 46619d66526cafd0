"""``proxy-config``: an nginx configuration to put in front of the service.

gunicorn's sync workers each serve one client at a time, so a client that
sends its headers slowly, or reads a long history slowly, holds a whole
worker. nginx in front takes those clients off the workers:

* request bodies are read whole before they are passed on
  (``proxy_request_buffering on``) and client headers and bodies must arrive
  within ``client_header_timeout`` / ``client_body_timeout``;
* answers are read from gunicorn as fast as it writes them
  (``proxy_buffering on``): a little in memory (``proxy_buffers``), the rest in
  temporary files under the prefix, up to ``proxy_max_temp_file_size``. Past
  that nginx reads from gunicorn only as fast as the client takes the answer,
  so even a longer one streams whole; it is never held in memory and never
  cut off (``proxy_read_timeout`` is long).

Connections per client address: ``limit_conn`` counts requests nginx is
working on, from the moment their headers are in until the answer is sent.
A client still sending its headers is not counted; those are bounded by
``client_header_timeout`` and ``worker_connections`` instead. The limit
(CONNECTIONS_PER_CLIENT) is well above what one well-behaved client uses, and
each connection it lets through costs gunicorn at most one worker for as long
as gunicorn needs to write the answer, never as long as the client takes to
read it.

The configuration runs as is with ``nginx -p PREFIX -c FILE``: the pid file,
logs and temporary files all live under the prefix, so it needs no root.
nginx opens its compiled-in error log before it reads the configuration; a
user without access there may add ``-e PREFIX/error.log``.
"""
import os
import pwd
import sys

from . import secret_paths

DEFAULT_LISTEN = '127.0.0.1:8080'
DEFAULT_UPSTREAM = '127.0.0.1:8000'
# Per client address, see the module's docstring.
CONNECTIONS_PER_CLIENT = 32
# The v3 batch route accepts bodies up to 4 MiB (points.v3 max_body_bytes).
V3_MAX_BODY = '4m'
# Idle connections each nginx worker keeps open to gunicorn.
UPSTREAM_KEEPALIVE = 16
# An instance whose connection failed is sent nothing for this long.
FAIL_TIMEOUT = '5s'
# An answer nginx spills to disk beyond its memory buffers, at most this much.
MAX_TEMP_FILE_SIZE = '1024m'

TEMPLATE = """\
# nginx in front of balance_api; made by: python -m balance_api proxy-config
# Run: nginx -p {prefix} -c {prefix}/nginx.conf   (add -g 'daemon off;' to stay in the foreground)
{user}worker_processes auto;
# Room for worker_connections file descriptors.
worker_rlimit_nofile 8192;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    # The request line as logged: a path that carries a key is written as
    # its route's template (balance_api.web.secret_paths).
    map $request_uri $balance_api_logged_request {{
        default $request;
{secret_maps}    }}
    log_format balance_api '$remote_addr [$time_local] "$balance_api_logged_request" $status '
                           '$body_bytes_sent $request_time $upstream_response_time '
                           'id=$balance_api_request_id';
    access_log {prefix}/access.log balance_api;

    # Everything nginx writes, under the prefix.
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;

    server_tokens off;
    default_type application/octet-stream;

    # Slow clients: headers and bodies must keep arriving.
    client_header_timeout 10s;
    client_body_timeout 10s;
    # A client reading an answer must take some of it at least every minute.
    send_timeout 60s;
    keepalive_timeout 15s;

    # Requests in progress per client address (not counted: clients still
    # sending headers, bounded by client_header_timeout).
    limit_conn_zone $binary_remote_addr zone=balance_api_per_client:10m;
    limit_conn balance_api_per_client {connections};
    limit_conn_status 429;

    # The client's request id, or nginx's own when it sent none.
    map $http_x_request_id $balance_api_request_id {{
        ""      $request_id;
        default $http_x_request_id;
    }}

    # One line per instance of the service; all of them use one database.
    upstream balance_api {{
{upstream_servers}        keepalive {keepalive};
    }}

    server {{
        listen {listen};

        # The service's MAX_BODY_BYTES.
        client_max_body_size {max_body};
        client_body_buffer_size 64k;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Request-ID $balance_api_request_id;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;

        # Whole request bodies before gunicorn sees them.
        proxy_request_buffering on;
        # Answers read off gunicorn at once: memory first, then temp files.
        proxy_buffering on;
        proxy_buffer_size 16k;
        proxy_buffers 16 16k;
        proxy_busy_buffers_size 32k;
        proxy_max_temp_file_size {max_temp};
        proxy_temp_file_write_size 64k;

        proxy_connect_timeout 5s;
        proxy_send_timeout 60s;
        # Long histories and exports take their time: never cut them off.
        proxy_read_timeout 300s;
        # A request is never passed on to another instance once it was sent:
        # nginx takes PUT for idempotent, but a transfer is not, and an
        # instance that failed after reading it may have committed it. The
        # client's retry with the same Idempotency-Key settles it exactly
        # once. An instance that fails is left out for FAIL_TIMEOUT
        # (with one instance nginx never leaves it out).
        proxy_next_upstream off;

        location / {{
            proxy_pass http://balance_api;
        }}

        # The v3 batch route reads larger bodies.
        location /v3/ {{
            client_max_body_size {v3_max_body};
            client_body_buffer_size 256k;
            proxy_pass http://balance_api;
        }}
{secret_locations}    }}
}}
"""


def _user_line(prefix):
    """As root, nginx's workers run as the prefix's owner: they write its temp files."""
    if os.geteuid() != 0:
        return ''
    try:
        owner = pwd.getpwuid(os.stat(prefix).st_uid).pw_name
    except (OSError, KeyError):
        owner = 'root'
    return 'user %s;\n' % owner


# A route whose path carries a key: its requests' error lines are not written,
# since nginx names the request line in every one of them.
SECRET_LOCATION = """
        # {template}: the path carries a key.
        location ~* "{pattern}" {{
            error_log /dev/null emerg;
            proxy_pass http://balance_api;
        }}
"""


def _secret_maps(secret_routes):
    return ''.join('        "~*%s" "$request_method %s $server_protocol";\n'
                   % (secret_paths.pattern_source(template), template)
                   for template in secret_routes)


def _secret_locations(secret_routes):
    return ''.join(SECRET_LOCATION.format(template=template,
                                          pattern='^' + secret_paths.pattern_source(template))
                   for template in secret_routes)


def _upstream_servers(upstreams):
    return ''.join('        server %s max_fails=1 fail_timeout=%s;\n' % (address, FAIL_TIMEOUT)
                   for address in upstreams)


def render(settings, listen=DEFAULT_LISTEN, upstream=DEFAULT_UPSTREAM, prefix='.',
           secret_routes=()):
    """The configuration text. ``upstream``: one instance's address, or a list
    of them; ``secret_routes``: the route templates whose paths carry a key
    (never logged)."""
    prefix = os.path.abspath(prefix)
    upstreams = [upstream] if isinstance(upstream, str) else list(upstream)
    return TEMPLATE.format(
        prefix=prefix, user=_user_line(prefix), listen=listen,
        upstream_servers=_upstream_servers(upstreams),
        connections=CONNECTIONS_PER_CLIENT, keepalive=UPSTREAM_KEEPALIVE,
        max_body=settings.max_body_bytes, v3_max_body=V3_MAX_BODY,
        max_temp=MAX_TEMP_FILE_SIZE, secret_maps=_secret_maps(secret_routes),
        secret_locations=_secret_locations(secret_routes))


def _address(text):
    import argparse
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError('an address is HOST:PORT, not %r' % text)
    if any(ch.isspace() or ch in ';{}' for ch in text):
        raise argparse.ArgumentTypeError('an address is HOST:PORT, not %r' % text)
    return text


def _directory(text):
    import argparse
    if any(ch.isspace() or ch in ';{}"\'' for ch in text):
        raise argparse.ArgumentTypeError('the prefix may hold no spaces, quotes, ; or braces')
    return text


def add_proxy_command(commands, secret_routes=()):
    """Add ``proxy-config`` to argparse subparsers; returns its handler by name.
    ``secret_routes``: the templates of the routes whose paths carry a key."""
    def cmd_proxy_config(settings, args):
        sys.stdout.write(render(settings, listen=args.listen,
                                upstream=args.upstream or [DEFAULT_UPSTREAM],
                                prefix=args.prefix, secret_routes=secret_routes))
        return 0

    proxy = commands.add_parser(
        'proxy-config', help='print an nginx configuration to run in front of the service')
    proxy.add_argument('--listen', default=DEFAULT_LISTEN, type=_address,
                       help='where nginx listens (default %s)' % DEFAULT_LISTEN)
    proxy.add_argument('--upstream', action='append', type=_address,
                       help='where an instance of the service serves; repeat it for '
                            'several instances on one database (default %s)'
                            % DEFAULT_UPSTREAM)
    proxy.add_argument('--prefix', default='.', type=_directory, metavar='DIR',
                       help="nginx's prefix: pid, logs and temp files (default: here)")
    return {'proxy-config': cmd_proxy_config}
