"""The discount codes' verifier: codes, claims and audit rows agree.

In one snapshot it checks that

- every code has the shape a drawn code has, is stored once per brand, and
  belongs to a brand and to a generation of that brand;
- the generation audit rows count exactly the codes that name them;
- a claimed code names its user, its time and its claim's audit row, and
  that row is a claim of the same brand, code and user;
- every claim audit row is the claim of exactly one code, no code is
  claimed by two audit rows, and no user holds two codes of one brand.

Each check is one query that returns the offending rows only (the database
does the scanning), so memory holds the problems, not the codes.

What it cannot see: the audit rows are not chained, so a claim removed
together with its audit row (the code set back to unclaimed), or a
generation removed with all of its codes, leaves nothing behind to
contradict it.
"""
from typing import List, NamedTuple, Optional

from peewee import JOIN, Expression, fn

from ..findings import Findings, stream
from ..storage.db import is_postgres, read_snapshot
from . import codes
from .models import CLAIM, GENERATE, DiscountAudit, DiscountBrand, DiscountCode


class DiscountProblem(NamedTuple):
    """One finding; the id fields name the rows it is about (None: not applicable)."""
    kind: str
    detail: str
    brand_id: Optional[int] = None
    code_id: Optional[int] = None
    audit_id: Optional[int] = None


class DiscountReport(NamedTuple):
    brands: int
    codes: int
    claimed: int
    audit_rows: int
    problems: List[DiscountProblem]
    # Problems found beyond ``max_problems``, counted but not listed.
    unlisted: int = 0

    @property
    def ok(self):
        return not self.problems and not self.unlisted

    @property
    def empty(self):
        return not (self.brands or self.codes or self.audit_rows)


def verify_discounts(db, max_problems=1000):
    """Check every code, claim and audit row, in one snapshot."""
    problem = Findings(DiscountProblem, max_problems)
    with read_snapshot(db):
        brands = DiscountBrand.select().count()
        code_count, claimed = DiscountCode.select(
            fn.COUNT(DiscountCode.id), fn.COUNT(DiscountCode.user_id)).tuples().get()
        audit_rows = DiscountAudit.select().count()
        for check in (_check_shapes, _check_duplicates, _check_generations, _check_claims,
                      _check_claim_audit, _check_holders):
            check(db, problem)
    return DiscountReport(brands, code_count, claimed, audit_rows, problem.listed,
                          problem.unlisted)


def _not_a_code(db, column):
    """Rows whose ``column`` is not 8 symbols of the alphabet."""
    if is_postgres(db):
        return ~column.regexp(codes.PATTERN)
    # SQLite has no regular expressions; GLOB has character classes.
    symbol = '[%s]' % codes.ALPHABET
    return (fn.length(column) != codes.LENGTH) | ~Expression(column, 'GLOB',
                                                             symbol * codes.LENGTH)


def _check_shapes(db, problem):
    rows = (DiscountCode.select(DiscountCode.id, DiscountCode.brand, DiscountCode.code)
            .where(_not_a_code(db, DiscountCode.code)).order_by(DiscountCode.id).tuples())
    for code_id, brand_id, code in stream(db, rows):
        problem('discount code', 'code %d of brand %d is %r, not a code this service draws'
                % (code_id, brand_id, code), brand_id=brand_id, code_id=code_id)


def _check_duplicates(db, problem):
    rows = (DiscountCode.select(DiscountCode.brand, DiscountCode.code, fn.COUNT(DiscountCode.id),
                                fn.MIN(DiscountCode.id))
            .group_by(DiscountCode.brand, DiscountCode.code)
            .having(fn.COUNT(DiscountCode.id) > 1)
            .order_by(DiscountCode.brand, DiscountCode.code).tuples())
    for brand_id, code, count, first_id in stream(db, rows):
        problem('discount duplicate code', 'brand %d has code %s %d times (first as code %d)'
                % (brand_id, code, count, first_id), brand_id=brand_id, code_id=first_id)


def _check_generations(db, problem):
    made = (DiscountCode.select(DiscountCode.generation.alias('generation_id'),
                                fn.COUNT(DiscountCode.id).alias('made'))
            .group_by(DiscountCode.generation).alias('made'))
    counted = (DiscountAudit.select(DiscountAudit.id, DiscountAudit.brand, DiscountAudit.codes,
                                    fn.COALESCE(made.c.made, 0))
               .join(made, JOIN.LEFT_OUTER, on=(made.c.generation_id == DiscountAudit.id))
               .where((DiscountAudit.action == GENERATE)
                      & (fn.COALESCE(made.c.made, 0) != DiscountAudit.codes))
               .order_by(DiscountAudit.id).tuples())
    for audit_id, brand_id, expected, found in stream(db, counted):
        problem('discount generation', 'generation %d of brand %d made %d codes, %d name it'
                % (audit_id, brand_id, expected, found), brand_id=brand_id, audit_id=audit_id)

    generation = DiscountAudit.alias('generation')
    brand = DiscountBrand.alias('brand')
    orphans = (DiscountCode.select(DiscountCode.id, DiscountCode.brand, DiscountCode.generation,
                                   generation.id, generation.action, generation.brand, brand.id)
               .join_from(DiscountCode, generation, JOIN.LEFT_OUTER,
                          on=(generation.id == DiscountCode.generation))
               .join_from(DiscountCode, brand, JOIN.LEFT_OUTER,
                          on=(brand.id == DiscountCode.brand))
               .where(brand.id.is_null() | generation.id.is_null()
                      | (generation.action != GENERATE)
                      | (generation.brand != DiscountCode.brand))
               .order_by(DiscountCode.id).tuples())
    for code_id, brand_id, generation_id, found, action, of_brand, known in stream(db, orphans):
        if known is None:
            reason = 'a brand that does not exist'
        elif found is None:
            reason = 'generation %d, which does not exist' % generation_id
        elif action != GENERATE:
            reason = 'audit row %d, which is a %s, not a generation' % (generation_id, action)
        else:
            reason = 'generation %d, which is of brand %d' % (generation_id, of_brand)
        problem('discount generation', 'code %d of brand %d names %s'
                % (code_id, brand_id, reason), brand_id=brand_id, code_id=code_id)


def _check_claims(db, problem):
    """Each claimed code against its claim's audit row."""
    row = DiscountAudit.alias('claim_row')
    claimed = (DiscountCode.select(DiscountCode.id, DiscountCode.brand, DiscountCode.code,
                                   DiscountCode.user_id, DiscountCode.claim,
                                   DiscountCode.claimed_at, row.id, row.action, row.brand,
                                   row.code, row.user_id, row.created_at)
               .join(row, JOIN.LEFT_OUTER, on=(row.id == DiscountCode.claim))
               .where((DiscountCode.user_id.is_null(False) | DiscountCode.claim.is_null(False)
                       | DiscountCode.claimed_at.is_null(False))
                      & (DiscountCode.user_id.is_null() | DiscountCode.claim.is_null()
                         | DiscountCode.claimed_at.is_null() | row.id.is_null()
                         | (row.action != CLAIM) | (row.brand != DiscountCode.brand)
                         | (row.code != DiscountCode.code)
                         | (row.user_id != DiscountCode.user_id)
                         | (row.created_at != DiscountCode.claimed_at)))
               .order_by(DiscountCode.id).tuples())
    for (code_id, brand_id, code, user_id, claim_id, claimed_at, found, action, of_brand,
         of_code, of_user, claim_time) in stream(db, claimed):
        where = 'code %d (%s) of brand %d' % (code_id, code, brand_id)
        if user_id is None or claim_id is None or claimed_at is None:
            reason = ('is claimed only in part: user %s, claim %s, claimed at %s'
                      % (user_id, claim_id, claimed_at))
        elif found is None:
            reason = 'is claimed by audit row %d, which does not exist' % claim_id
        elif action != CLAIM:
            reason = 'is claimed by audit row %d, which is a %s' % (claim_id, action)
        elif (of_brand, of_code, of_user) == (brand_id, code, user_id):
            reason = ('was claimed at %s, but its claim %d is dated %s'
                      % (claimed_at, claim_id, claim_time))
        else:
            reason = ('went to user %d, but its claim %d gave code %s of brand %d to user %d'
                      % (user_id, claim_id, of_code, of_brand, of_user))
        problem('discount claim', '%s %s' % (where, reason), brand_id=brand_id,
                code_id=code_id, audit_id=claim_id)


def _check_claim_audit(db, problem):
    """Each claim audit row is the claim of one code; no code is claimed twice."""
    code = DiscountCode.alias('claimed_code')
    unclaimed = (DiscountAudit.select(DiscountAudit.id, DiscountAudit.brand, DiscountAudit.code,
                                      DiscountAudit.user_id)
                 .join(code, JOIN.LEFT_OUTER, on=(code.claim == DiscountAudit.id))
                 .where((DiscountAudit.action == CLAIM) & code.id.is_null())
                 .order_by(DiscountAudit.id).tuples())
    for audit_id, brand_id, given, user_id in stream(db, unclaimed):
        problem('discount claim', 'audit row %d gave code %s of brand %d to user %d, but no '
                'code is claimed by it' % (audit_id, given, brand_id, user_id),
                brand_id=brand_id, audit_id=audit_id)

    twice = (DiscountAudit.select(DiscountAudit.brand, DiscountAudit.code,
                                  fn.COUNT(DiscountAudit.id), fn.MIN(DiscountAudit.id),
                                  fn.MAX(DiscountAudit.id))
             .where(DiscountAudit.action == CLAIM)
             .group_by(DiscountAudit.brand, DiscountAudit.code)
             .having(fn.COUNT(DiscountAudit.id) > 1)
             .order_by(DiscountAudit.brand, DiscountAudit.code).tuples())
    for brand_id, given, count, first_id, last_id in stream(db, twice):
        problem('discount claimed twice', 'code %s of brand %d was claimed %d times (audit '
                'rows %d to %d)' % (given, brand_id, count, first_id, last_id),
                brand_id=brand_id, audit_id=last_id)


def _check_holders(db, problem):
    """No user holds two codes of a brand, in the codes or in the audit."""
    held = (DiscountCode.select(DiscountCode.brand, DiscountCode.user_id,
                                fn.COUNT(DiscountCode.id), fn.MIN(DiscountCode.id))
            .where(DiscountCode.user_id.is_null(False))
            .group_by(DiscountCode.brand, DiscountCode.user_id)
            .having(fn.COUNT(DiscountCode.id) > 1)
            .order_by(DiscountCode.brand, DiscountCode.user_id).tuples())
    for brand_id, user_id, count, first_id in stream(db, held):
        problem('discount user holds two', 'user %d holds %d codes of brand %d (first code %d)'
                % (user_id, count, brand_id, first_id), brand_id=brand_id, code_id=first_id)
    claims = (DiscountAudit.select(DiscountAudit.brand, DiscountAudit.user_id,
                                   fn.COUNT(DiscountAudit.id), fn.MAX(DiscountAudit.id))
              .where(DiscountAudit.action == CLAIM)
              .group_by(DiscountAudit.brand, DiscountAudit.user_id)
              .having(fn.COUNT(DiscountAudit.id) > 1)
              .order_by(DiscountAudit.brand, DiscountAudit.user_id).tuples())
    for brand_id, user_id, count, last_id in stream(db, claims):
        problem('discount user holds two', 'user %d claimed %d codes of brand %d (last audit '
                'row %d)' % (user_id, count, brand_id, last_id), brand_id=brand_id,
                audit_id=last_id)
