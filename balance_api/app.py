"""The application factory: wires the database, the web plumbing and each domain's routes."""
import logging

import swagger_ui_bundle

from .auth import keys as auth_keys
from .auth import permits
from .auth.middleware import Authentication, AuthOff
from .auth.openapi import PermitsPlugin
from .config import Settings
from .discounts import openapi as discounts_openapi
from .discounts import routes as discounts_routes
from .exports import openapi as exports_openapi
from .exports import routes as exports_routes
from .money import openapi as money_openapi
from .money import routes as money_routes
from .points import openapi as points_openapi
from .points import routes as points_routes
from .storage.db import database, open_database
from .web import cors, error_handlers, media
from .web.commands import CommandRunner
from .web.meta import DocsPage, Health, OpenApiDocument, Ready
from .web.metrics_http import MetricsPage, RequestMetrics
from .web.middleware import (BodyLimit, ClientAddress, DatabaseConnection, RequestId,
                              RequestTarget)
from .web.openapi import build_spec
from .web.routing import RoutesApp

log = logging.getLogger('balance_api')


def create_app(settings=None, db=None):
    """Build the WSGI application. Connects to nothing until the first request."""
    settings = settings or Settings.from_env()
    db = db or open_database(settings.database_url, pool_size=settings.pool_size,
                             busy_timeout=settings.sqlite_busy_timeout)
    database.initialize(db)

    authenticator = auth_keys.Authenticator(db)
    if settings.auth:
        access = Authentication(authenticator)
    else:
        log.warning('BALANCE_API_AUTH=off: no key is asked for; anyone who reaches the port '
                    'may read and move all money')
        access = AuthOff()
    app = RoutesApp(middleware=[RequestMetrics(), *cors.middleware(settings.cors_origins),
                                ClientAddress(settings.trusted_proxies), RequestId(),
                                RequestTarget(), BodyLimit(settings.max_body_bytes),
                                DatabaseConnection(db), access])
    if not settings.auth:
        app.headers_on_every_answer.append(AuthOff.HEADER)
    media.install(app)

    commands = CommandRunner(db)

    def revoke_keys_of(uid):
        auth_keys.revoke_keys_of_user(db, uid)
        authenticator.forget_user(uid)

    money_routes.add_routes(app, db, commands, on_user_deleted=revoke_keys_of)
    points_routes.add_routes(app, db, commands)
    discounts_routes.add_routes(app, db, commands)
    exports_routes.add_routes(app, db, settings)
    app.add_route('/health', Health())
    app.add_route('/ready', Ready(db))
    app.add_route('/metrics', MetricsPage(permits.METRICS_GET, public=settings.metrics_public))
    app.add_route('/openapi.json', OpenApiDocument(
        build_spec([money_openapi.add_to_spec, points_openapi.add_to_spec,
                    discounts_openapi.add_to_spec, exports_openapi.add_to_spec],
                   plugins=[PermitsPlugin(app.permits_by_route(), app.token_parameters())])))
    app.add_route('/api/docs', DocsPage())
    app.add_static_route('/api/docs/static', swagger_ui_bundle.swagger_ui_path)

    error_handlers.install(app)
    return app
