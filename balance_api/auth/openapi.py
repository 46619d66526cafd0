"""Keys in the OpenAPI document: both ways of sending one, and each operation's permit."""
from apispec import BasePlugin

from ..web.openapi import failures
from . import errors, permits

SECURITY = [{'bearer': []}, {'clientKey': []}]
_REFUSALS = (errors.MissingCredentials.code, errors.MalformedCredentials.code,
             errors.UnknownKey.code, errors.RevokedKey.code, errors.ExpiredKey.code,
             errors.MissingPermit.code, errors.OtherUsersData.code)


class PermitsPlugin(BasePlugin):
    """``permits``: ``{uri_template: {method: permit}}``, None for an open route
    (``balance_api.web.routing.RoutesApp.permits_by_route``); ``token_parameters``:
    ``{uri_template: parameter}`` of the routes that take the key's token from
    their path (``RoutesApp.token_parameters``), which no security scheme of
    OpenAPI can state: their operations name the parameter in ``x-key-in-path``."""

    def __init__(self, by_route, token_parameters=None):
        self.by_route = by_route
        self.token_parameters = token_parameters or {}

    def init_spec(self, spec):
        spec.components.security_scheme('bearer', {
            'type': 'http', 'scheme': 'bearer',
            'description': '`Authorization: Bearer <token>`'})
        spec.components.security_scheme('clientKey', {
            'type': 'apiKey', 'in': 'header', 'name': 'X-Client-Authorization',
            'description': '`X-Client-Authorization: <token>`'})

    def operation_helper(self, path=None, operations=None, **kwargs):
        if path not in self.by_route:
            return
        needed = self.by_route[path]
        for method, operation in operations.items():
            if needed is None:
                operation['security'] = []
                continue
            permit = needed.get('get' if method == 'head' else method, permits.ADMIN)
            operation['security'] = SECURITY
            operation['x-permit'] = permit
            text = '**Permit:** `%s` (or `admin`).' % permit
            parameter = self.token_parameters.get(path)
            if parameter is not None:
                operation['security'] = []
                operation['x-key-in-path'] = parameter
                text += ' The key is the path parameter `%s`, not a header.' % parameter
            operation['description'] = (operation.get('description', '') + '\n\n' + text).strip()
            responses = operation.setdefault('responses', {})
            for status, response in failures(*_REFUSALS).items():
                if status in ('401', '403'):
                    responses.setdefault(status, response)
