"""The discount codes in a signed checkpoint: every brand's audit rows, pinned.

The audit rows of the discount codes are written once and never changed:
one per generation (how many codes) and one per claim (which code, which
user). A checkpoint records for every brand its newest audit row, how many
audit rows it had up to it, the codes those generations made and the claims
among them, and the SHA-256 of those rows in id order::

    "discount_brands": [{"brand_id": 1, "last_audit_id": 40, "audit_rows": 7,
                         "generated": 100, "claimed": 6, "audit_sha256": "<64 hex>"}, ...]

``verify`` ties every code to its audit rows; this ties the audit rows to
what a checkpoint signed. A claim removed together with its audit row, a
claim given to another user in both its code and its audit row, a
generation removed with its codes: the plain verifier cannot see any of
these, and each changes a brand's rows up to a checkpoint's last id.

Both sides read the audit table once, in id order, through one cursor.
"""
import hashlib
import json

from ..discounts.audit import newest_id as newest_audit_id
from ..discounts.models import CLAIM, GENERATE, DiscountAudit
from ..findings import stream

MODELS = [DiscountAudit]
__all__ = ['MODELS', 'check_brands', 'expectations', 'newest_audit_id', 'read_brands']


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


def _audit_rows(db):
    return stream(db, DiscountAudit.select(
        DiscountAudit.id, DiscountAudit.created_at, DiscountAudit.action, DiscountAudit.brand,
        DiscountAudit.codes, DiscountAudit.code, DiscountAudit.user_id, DiscountAudit.key_name)
        .order_by(DiscountAudit.id).tuples())


def read_brands(db):
    """``(brands, newest audit id)``: what a checkpoint records of the discount codes.
    Call it inside the checkpoint's snapshot."""
    brands = {}
    newest = None
    for row in _audit_rows(db):
        brand = brands.get(row[3])
        if brand is None:
            brand = brands[row[3]] = _Brand(row[3])
        brand.add(row)
        newest = row[0]
    return [brands[brand_id].figures() for brand_id in sorted(brands)], newest


def expectations(brands):
    """A record's ``discount_brands`` checked for shape: a list of
    ``(brand_id, last_audit_id, figures)``. Raises ValueError or KeyError or
    TypeError on a malformed list."""
    if not isinstance(brands, list):
        raise TypeError('discount_brands is not a list')
    expected = []
    for brand in brands:
        figures = {}
        for name in ('brand_id', 'last_audit_id', 'audit_rows', 'generated', 'claimed'):
            value = brand[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError('discount brand %s: %r' % (name, value))
            figures[name] = value
        digest = brand['audit_sha256']
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError('discount brand audit_sha256: %r' % (digest,))
        figures['audit_sha256'] = digest
        expected.append((figures['brand_id'], figures['last_audit_id'], figures))
    return expected


def check_brands(db, records, problem):
    """Every checkpointed brand's audit rows, up to the checkpoint's last id,
    still what the checkpoint signed. ``records`` are ``(label, brands)`` with
    brands as ``expectations`` gives them; ``problem(kind, detail)``."""
    # wanted[brand][last audit id] = [(figures, label), ...]
    wanted = {}
    for label, brands in records:
        for brand_id, last_audit_id, figures in brands:
            wanted.setdefault(brand_id, {}).setdefault(last_audit_id, []).append(
                (figures, label))
    if not wanted:
        return
    seen = {}
    for row in _audit_rows(db):
        points = wanted.get(row[3])
        if points is None:
            continue
        brand = seen.get(row[3])
        if brand is None:
            brand = seen[row[3]] = _Brand(row[3])
        brand.add(row)
        for figures, label in points.pop(row[0], ()):
            _compare(brand.figures(), figures, label, problem)
    for brand_id in sorted(wanted):
        for last_audit_id in sorted(wanted[brand_id]):
            for _, label in wanted[brand_id][last_audit_id]:
                problem('checkpoint gone', 'discount brand %d: audit row %d, its newest in %s, '
                        'no longer exists (or now belongs to another brand)'
                        % (brand_id, last_audit_id, label))


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
