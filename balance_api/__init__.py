"""balance_api: balances, transfers and a tamper-evident audit journal."""

# The service's version (CHANGELOG.md): /health, the OpenAPI document and
# ``--version`` read it from here. Set before the import below, which reads it.
__version__ = '1.0.0'

from .app import create_app  # noqa: E402

__all__ = ['__version__', 'create_app']
