"""Loyalty points: partners (payers) fund points, members spend them.

Every point spent is traced to the grant and the payer that funded it;
spending draws the oldest points first, and no payer, wallet or member is
ever negative. Two APIs: the payer points API (``/points/{uid}/...``) and
the loyalty clubs' v3 API (``/v3/{club}/transactions/points...``).
"""
