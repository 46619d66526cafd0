"""Validation at the edge: a marshmallow schema's complaints, as the API's numbered errors.

Each coded field names the error its bad values get, so a request with
several bad fields is answered for the first of them in declaration order.
"""
from marshmallow import Schema, ValidationError, fields

from .. import errors


class Coded:
    """Mixin of a field: the API error that a bad value of it is answered with."""
    error_class = errors.ApiError


def load(schema, data):
    """Validate ``data`` with ``schema``; raise the API error of the first bad field."""
    if not isinstance(data, dict):
        raise errors.MalformedBody()
    try:
        return schema.load(data)
    except ValidationError as exc:
        for name, field in schema.fields.items():
            if name in exc.messages and isinstance(field, Coded):
                raise field.error_class(str(exc.messages[name])) from exc
        raise errors.UnknownField(str(exc.messages)) from exc


class ErrorResponse(Schema):
    code = fields.Integer(required=True, metadata={'description': 'Stable numeric error code.'})
    message = fields.String(required=True)
