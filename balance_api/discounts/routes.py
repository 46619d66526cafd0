"""The discount codes' routes, added by the application factory."""
from .resources import BrandCode, BrandStatistics, LegacyClaim, LegacyGenerate

LEGACY = '/discounts/api/v1.0'
LEGACY_GENERATE = LEGACY + '/generate'
LEGACY_CLAIM = LEGACY + '/get_code/{user_id}/{user_secret}/{brand_id}'
BRAND_CODE = '/discounts/{brand_id}/code'
BRAND_STATS = '/discounts/{brand_id}/stats'
# The routes whose path carries a key (no log writes their paths; the proxy's neither).
SECRET_ROUTES = (LEGACY_CLAIM,)


def add_routes(app, db, commands):
    """Serve the discount codes on ``app``; ``commands`` runs a generation once
    per Idempotency-Key."""
    app.add_route(LEGACY_GENERATE, LegacyGenerate(db, commands))
    app.add_route(LEGACY_CLAIM, LegacyClaim(db))
    app.add_route(BRAND_CODE, BrandCode(db))
    app.add_route(BRAND_STATS, BrandStatistics(db))
