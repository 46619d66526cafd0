"""Settings, read from the environment once at start."""
import dataclasses
import os
import re


@dataclasses.dataclass(frozen=True)
class Settings:
    # peewee's playhouse.db_url form: sqlite:///path.db or postgresql://user@host:port/db
    database_url: str = 'sqlite:///balance_api.db'
    # Request bodies larger than this are refused before they are read.
    max_body_bytes: int = 64 * 1024
    # PostgreSQL connections each worker process may hold.
    pool_size: int = 4
    # Seconds a SQLite writer waits for the write lock before giving up (503);
    # well below gunicorn's 30 s worker timeout.
    sqlite_busy_timeout: float = 10.0
    # Off only when BALANCE_API_AUTH=off is set: then anyone may do anything.
    auth: bool = True
    # The Ed25519 private key (PEM) that signs export manifests and checkpoints.
    signing_key_file: str = ''
    # LOG_FORMAT: ``text`` (Apache combined access lines, gunicorn's error
    # lines) or ``json`` (one JSON object a line); balance_api.web.access_log.
    log_format: str = 'text'
    # Proxies whose X-Forwarded-For names the real client (default: this host).
    trusted_proxies: tuple = ('127.0.0.1', '::1')
    # METRICS_PUBLIC=1: /metrics answers without a key (behind a network that
    # only the scraper reaches); otherwise it needs Balance:Api:Metrics:Get.
    metrics_public: bool = False
    # CORS_ORIGINS: the origins (scheme://host[:port]) whose pages may call the
    # API from a browser; none by default, and never a wildcard.
    cors_origins: tuple = ()

    @classmethod
    def from_env(cls, environ=None):
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=env.get('DATABASE_URL', defaults.database_url),
            max_body_bytes=int(env.get('MAX_BODY_BYTES', defaults.max_body_bytes)),
            pool_size=int(env.get('DB_POOL_SIZE', defaults.pool_size)),
            sqlite_busy_timeout=float(env.get('SQLITE_BUSY_TIMEOUT', defaults.sqlite_busy_timeout)),
            auth=auth_setting(env.get('BALANCE_API_AUTH')),
            signing_key_file=env.get('SIGNING_KEY_FILE', defaults.signing_key_file),
            log_format=log_format_setting(env.get('LOG_FORMAT')),
            trusted_proxies=trusted_proxies_setting(env.get('TRUSTED_PROXIES'),
                                                    defaults.trusted_proxies),
            metrics_public=flag_setting('METRICS_PUBLIC', env.get('METRICS_PUBLIC')),
            cors_origins=cors_origins_setting(env.get('CORS_ORIGINS')),
        )


def auth_setting(value):
    """BALANCE_API_AUTH: unset or ``on`` keeps keys required; only ``off`` turns them off."""
    if value is None or value.strip().lower() in ('', 'on'):
        return True
    if value.strip().lower() == 'off':
        return False
    raise ValueError('BALANCE_API_AUTH is "on" or "off", not %r' % value)


LOG_FORMATS = ('text', 'json')


def log_format_setting(value):
    """LOG_FORMAT: unset or empty is ``text``; otherwise ``text`` or ``json``."""
    if value is None or not value.strip():
        return 'text'
    if value.strip().lower() in LOG_FORMATS:
        return value.strip().lower()
    raise ValueError('LOG_FORMAT is "text" or "json", not %r' % value)


def trusted_proxies_setting(value, default):
    """TRUSTED_PROXIES: comma-separated addresses; empty trusts none."""
    if value is None:
        return default
    return tuple(address.strip() for address in value.split(',') if address.strip())


def flag_setting(name, value):
    """An on/off setting: unset, empty, ``0``, ``false`` or ``off`` is off;
    ``1``, ``true`` or ``on`` is on."""
    if value is None or value.strip().lower() in ('', '0', 'false', 'off'):
        return False
    if value.strip().lower() in ('1', 'true', 'on'):
        return True
    raise ValueError('%s is 1 or 0, not %r' % (name, value))


_ORIGIN = re.compile(r'https?://[^/?#\s*]+')


def cors_origins_setting(value):
    """CORS_ORIGINS: comma-separated origins, each as a browser sends it in
    Origin (``https://shop.example.com``, a port if not the default's, no
    path, no trailing slash); unset or empty allows none."""
    origins = tuple(dict.fromkeys(o.strip() for o in (value or '').split(',') if o.strip()))
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError('CORS_ORIGINS lists origins such as https://shop.example.com '
                             '(no path, no wildcard), not %r' % origin)
    return origins
