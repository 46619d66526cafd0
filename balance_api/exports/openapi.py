"""The exports in the OpenAPI document (``balance_api.web.openapi``)."""


def add_to_spec(spec, plugin):
    """The exports' schemas and operations."""
