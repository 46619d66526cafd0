"""Money: balances, transfers and the double-entry journal with its hash chains.

The API existing offer_balance clients speak: users, add/sub, transfers,
history, and ``verify``.
"""
