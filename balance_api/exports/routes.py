"""The exports' routes, added by the application factory."""
from .discounts import DISCOUNTS
from .journal import JOURNAL
from .points import POINTS
from .resources import ExportManifest, ExportRows, PublicKey, Reconciliation


def add_routes(app, db, settings):
    """Serve the exports on ``app``; ``settings.signing_key_file`` signs manifests."""
    app.add_route('/export', ExportRows(db, settings, JOURNAL))
    app.add_route('/export/manifest', ExportManifest(db, settings, JOURNAL))
    app.add_route('/export/points', ExportRows(db, settings, POINTS))
    app.add_route('/export/points/manifest', ExportManifest(db, settings, POINTS))
    app.add_route('/export/discounts', ExportRows(db, settings, DISCOUNTS))
    app.add_route('/export/discounts/manifest', ExportManifest(db, settings, DISCOUNTS))
    app.add_route('/export/public-key', PublicKey(settings))
    app.add_route('/reconciliation', Reconciliation(db))
