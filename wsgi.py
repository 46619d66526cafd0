"""WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:application``.

The schema must be migrated first (``python -m balance_api migrate``);
``python -m balance_api serve`` does both.
"""
from balance_api import create_app

application = create_app()
