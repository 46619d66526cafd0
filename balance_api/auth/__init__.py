"""API keys: who may call the API, with which permits, for which user.

Clients send a key's token as ``Authorization: Bearer <token>`` or
``X-Client-Authorization: <token>``. Only the token's SHA-256 is stored. A
key holds permits (one per action, or ``admin``) and may be bound to one
user, for whom alone it then acts.
"""
