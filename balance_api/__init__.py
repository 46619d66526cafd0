"""balance_api: balances, transfers and a tamper-evident audit journal."""
from .app import create_app

__all__ = ['create_app']
