"""HTTP plumbing, with no domain rules: media, middleware, request ids, the
idempotent command runner, streamed bodies, the OpenAPI document, health,
and running under gunicorn.

It imports no domain: each domain adds its own routes (``app.create_app``).
"""
