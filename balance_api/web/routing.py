"""The application, remembering its routes (the API document states each operation's
permit) and the headers every answer carries."""
import falcon


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
