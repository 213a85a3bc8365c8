"""Local stand-ins for the providers Tandem connects to (tests only).

Each is a small Flask app, run on a local port, that speaks the requests and
answers documented in the provider's published API reference (paths, query
parameters, JSON shapes, auth headers) for the calls Tandem makes. They are
not the providers: they are built from the reference, and kept honest by the
recorded examples of real answers in ``tests/data/providers/`` (the tests parse
both through the same code). The OAuth2 parts are a real authorization server,
authlib's (``authlib.integrations.flask_oauth2``): authorization code with PKCE,
refresh tokens, RFC 7009 revocation, bearer tokens checked on every API call.
"""
