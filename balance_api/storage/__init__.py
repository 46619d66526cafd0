"""Storage plumbing: opening databases, pools, transactions, migrations, SQL helpers.

It knows no domain: the domains' models and SQL build on it.
"""
