"""Finance audit exports: the journal and the points entries as CSV or JSON Lines,
with signed manifests, reconciliation and signed checkpoints.

Exports read the other domains' ledgers through their public read functions
and models; they write nothing but checkpoints.
"""
