"""The discount codes in a signed checkpoint: every brand's audit rows, pinned.

The audit rows of the discount codes are written once and never changed:
one per generation (how many codes) and one per claim (which code, which
user). A checkpoint first learns the settled audit id (every row up to it
committed or rolled back for good, ``discounts.audit.settled_id``), then
records, in its snapshot, for every brand with rows up to that id: its
newest such row, how many rows it had up to it, the codes those
generations made and the claims among them, and the SHA-256 of those rows
in id order::

    "discount_brands": [{"brand_id": 1, "last_audit_id": 40, "audit_rows": 7,
                         "generated": 100, "claimed": 6, "audit_sha256": "<64 hex>"}, ...]

with the settled id in its totals (``discount_audit_settled_id``). So every
row with an id up to the settled one belongs to exactly one brand's pinned
rows, and a later row, whatever its brand, has a larger id.

``verify`` ties every code to its audit rows; this ties the audit rows to
what a checkpoint signed. A claim removed together with its audit row, a
claim given to another user in both its code and its audit row, a
generation removed with its codes, a row slipped in under an old id: the
plain verifier cannot see any of these, and each changes the rows up to a
checkpoint's settled id.

Both sides read the audit table once, in id order, through one cursor.
"""
import hashlib
import json

from ..discounts import audit
from ..discounts.models import CLAIM, GENERATE

MODELS = audit.MODELS
__all__ = ['MODELS', 'check_brands', 'expectations', 'read_brands', 'settled_id']

settled_id = audit.settled_id


def _row_text(row):
    """One audit row as the digest reads it: a JSON array and a newline."""
    audit_id, created_at, action, brand_id, codes, code, user_id, key_name = row
    return (json.dumps([audit_id, created_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ'), action,
                        brand_id, codes, code, user_id, key_name],
                       ensure_ascii=False, separators=(',', ':')) + '\n').encode('utf-8')


class _Brand:
    """One brand's audit rows so far: their count, codes, claims and digest."""

    def __init__(self, brand_id):
        self.brand_id = brand_id
        self.last_audit_id = None
        self.audit_rows = 0
        self.generated = 0
        self.claimed = 0
        self.digest = hashlib.sha256()

    def add(self, row):
        self.last_audit_id = row[0]
        self.audit_rows += 1
        if row[2] == GENERATE:
            self.generated += row[4]
        elif row[2] == CLAIM:
            self.claimed += 1
        self.digest.update(_row_text(row))

    def figures(self):
        return {'brand_id': self.brand_id, 'last_audit_id': self.last_audit_id,
                'audit_rows': self.audit_rows, 'generated': self.generated,
                'claimed': self.claimed, 'audit_sha256': self.digest.hexdigest()}


def read_brands(db, settled):
    """``(brands, settled id)``: what a checkpoint records of the discount codes.

    Call it inside the checkpoint's snapshot, with ``settled`` as
    ``settled_id(db)`` answered before the snapshot began (None on SQLite:
    the snapshot's newest id is settled there)."""
    if settled is None:
        settled = audit.newest_id() or 0
    brands = {}
    for row in audit.rows(db, up_to=settled):
        brand = brands.get(row[3])
        if brand is None:
            brand = brands[row[3]] = _Brand(row[3])
        brand.add(row)
    return [brands[brand_id].figures() for brand_id in sorted(brands)], settled


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError('discount %s: %r' % (name, value))
    return value


def expectations(brands, settled):
    """A record's ``discount_brands`` and settled id, checked for shape:
    ``({brand_id: figures}, settled id)``. Raises ValueError or KeyError or
    TypeError on a malformed record."""
    if not isinstance(brands, list):
        raise TypeError('discount_brands is not a list')
    pinned = {}
    for brand in brands:
        figures = {name: _count(brand[name], name) for name in (
            'brand_id', 'last_audit_id', 'audit_rows', 'generated', 'claimed')}
        digest = brand['audit_sha256']
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError('discount brand audit_sha256: %r' % (digest,))
        figures['audit_sha256'] = digest
        if figures['last_audit_id'] > settled or figures['brand_id'] in pinned:
            raise ValueError('discount brand %d pinned past the settled id, or twice'
                             % figures['brand_id'])
        pinned[figures['brand_id']] = figures
    return pinned, _count(settled, 'settled id')


def check_brands(db, records, problem):
    """Every checkpoint's discount audit rows, up to its settled id, still the
    ones it signed. ``records`` are ``(label, pinned, settled)`` as
    ``expectations`` gives them; ``problem(kind, detail)``."""
    if not records:
        return
    # wanted[brand][last audit id] = [(figures, label), ...]
    wanted = {}
    for label, pinned, _ in records:
        for brand_id, figures in pinned.items():
            wanted.setdefault(brand_id, {}).setdefault(figures['last_audit_id'], []).append(
                (figures, label))
    # The records by settled id: each is held to the brands' newest rows up to it.
    by_settled = sorted(records, key=lambda record: record[2])
    waiting = 0
    seen = {}
    for row in audit.rows(db):
        audit_id, brand_id = row[0], row[3]
        while waiting < len(by_settled) and by_settled[waiting][2] < audit_id:
            _check_covered(seen, by_settled[waiting], problem)
            waiting += 1
        brand = seen.get(brand_id)
        if brand is None:
            brand = seen[brand_id] = _Brand(brand_id)
        brand.add(row)
        for figures, label in wanted.get(brand_id, {}).pop(audit_id, ()):
            _compare(brand.figures(), figures, label, problem)
    for record in by_settled[waiting:]:
        _check_covered(seen, record, problem)
    for brand_id in sorted(wanted):
        for last_audit_id in sorted(wanted[brand_id]):
            for _, label in wanted[brand_id][last_audit_id]:
                problem('checkpoint gone', 'discount brand %d: audit row %d, its newest in %s, '
                        'no longer exists (or now belongs to another brand)'
                        % (brand_id, last_audit_id, label))


def _check_covered(seen, record, problem):
    """Every brand's newest row up to the record's settled id is the one it pinned,
    or an earlier one (then the pinned row is gone, reported once the scan ends)."""
    label, pinned, settled = record
    for brand_id in sorted(seen):
        newest = seen[brand_id].last_audit_id
        figures = pinned.get(brand_id)
        if figures is None:
            problem('checkpoint rewritten', 'discount brand %d has audit row %d, at or below '
                    'the settled id %d of %s, which pinned no row of that brand (a row was '
                    'added under an old id)' % (brand_id, newest, settled, label))
        elif newest > figures['last_audit_id']:
            problem('checkpoint rewritten', 'discount brand %d has audit row %d, after its '
                    'newest in %s (%d) and at or below that checkpoint\'s settled id %d (a row '
                    'was added under an old id)' % (brand_id, newest, label,
                                                     figures['last_audit_id'], settled))


def _compare(found, figures, label, problem):
    changed = [name for name in ('audit_rows', 'generated', 'claimed')
               if found[name] != figures[name]]
    if changed:
        problem('checkpoint rewritten', 'discount brand %d up to audit row %d: %s, %s in %s'
                % (figures['brand_id'], figures['last_audit_id'],
                   ', '.join('%s %d' % (name, found[name]) for name in changed),
                   ', '.join('%s %d' % (name, figures[name]) for name in changed), label))
    elif found['audit_sha256'] != figures['audit_sha256']:
        problem('checkpoint rewritten', 'discount brand %d up to audit row %d: the audit rows '
                'are not the ones %s signed (a row was changed, or one replaced by another)'
                % (figures['brand_id'], figures['last_audit_id'], label))
