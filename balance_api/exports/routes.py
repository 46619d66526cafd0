"""The exports' routes, added by the application factory."""


def add_routes(app, db, settings):
    """Serve the exports on ``app``; ``settings.signing_key_file`` signs manifests."""
