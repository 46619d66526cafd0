"""The application, remembering its routes (the API document states each operation's
permit; the logs leave out the paths of those that carry a key) and the headers every
answer carries."""
import falcon

from . import secret_paths


class RoutesApp(falcon.App):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.routes = []
        # (name, value) pairs every answer carries, including the refusals the
        # server makes before the application runs (balance_api.web.worker).
        self.headers_on_every_answer = []

    def add_route(self, uri_template, resource, **kwargs):
        super().add_route(uri_template, resource, **kwargs)
        self.routes.append((uri_template, resource))
        if getattr(resource, 'token_parameter', None):
            # Its paths hold a key's token: the logs write the template instead.
            secret_paths.register(uri_template)

    def permits_by_route(self):
        """``{uri_template: {method: permit}}`` of the routes that need a key;
        a public route maps to None."""
        found = {}
        for template, resource in self.routes:
            if getattr(resource, 'public', False):
                found[template] = None
            else:
                found[template] = {method.lower(): permit
                                   for method, permit in getattr(resource, 'permits', {}).items()}
        return found

    def token_parameters(self):
        """``{uri_template: parameter}`` of the routes whose key's token is a path
        parameter (``balance_api.auth.middleware``)."""
        return {template: resource.token_parameter for template, resource in self.routes
                if getattr(resource, 'token_parameter', None)}
