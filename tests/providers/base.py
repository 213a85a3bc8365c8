"""The running of a stand-in (a Flask app in a thread on a local port) and the OAuth2
authorization server the OAuth2 providers' stand-ins share (authlib's, Flask flavour)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

CLIENT_ID = "tandem-test-client"
CLIENT_SECRET = "test-client-secret-not-a-real-one"
USER = {"id": "u-1", "email": "ada@example.com"}


class StandIn:
    """A Flask app served on 127.0.0.1:<free port> in a thread; ``url`` is its base."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.bearers: list[tuple[str, str]] = []  # (path, bearer token) of authorized ones

        @app.before_request
        def record() -> None:
            self.requests.append((request.method, request.path))
            authorization = request.headers.get("Authorization", "")
            if authorization.startswith("Bearer "):
                self.bearers.append((request.path, authorization.removeprefix("Bearer ")))

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


# -- the OAuth2 authorization server ------------------------------------------------------


@dataclass
class Client:
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # a registered app allows its registered callbacks; here: Tandem's callback path
        return redirect_uri.endswith("/api/v1/connections/callback/")

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    at: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return time.time() - self.at > 300


@dataclass
class Token:
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    expires_in: int
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> dict[str, str]:
        return USER

    def get_client(self) -> Client:
        return Client()


class OAuthState:
    """What the authorization server holds, and what the tests look at."""

    def __init__(self) -> None:
        self.codes: dict[str, Code] = {}
        self.tokens: list[Token] = []
        self.lifetime = 3600  # seconds an access token lives
        self.grants: list[str] = []  # grant_type of every token issued
        self.revoked: list[str] = []  # token_type_hint of every revocation
        self.challenges: list[str | None] = []  # the code_challenge of every authorization
        self.token_delay = 0.0  # seconds the token endpoint takes (to make refreshes overlap)

    def by_access(self, value: str) -> Token | None:
        return next((t for t in self.tokens if t.access_token == value), None)

    def by_refresh(self, value: str) -> Token | None:
        return next((t for t in self.tokens if t.refresh_token == value), None)


def add_oauth(
    app: Flask,
    *,
    authorize_path: str,
    token_path: str,
    revoke_path: str | None = None,
    rotate_refresh_tokens: bool = True,
) -> tuple[OAuthState, ResourceProtector]:
    """Mount authlib's authorization server on ``app`` at the provider's paths. The
    authorize endpoint approves at once for USER (the person clicking "Allow")."""
    state = OAuthState()

    def save_token(token: dict[str, Any], req: Any) -> None:
        state.grants.append(req.payload.grant_type if req.payload else "?")
        state.tokens.append(
            Token(
                token["access_token"],
                token.get("refresh_token"),
                req.client.client_id,
                token.get("scope", ""),
                int(token["expires_in"]),
            )
        )

    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    server = AuthorizationServer(
        app, query_client=lambda cid: Client() if cid == CLIENT_ID else None, save_token=save_token
    )

    def expires_in(client: Any, grant_type: str) -> int:
        return state.lifetime

    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            lambda *a, **k: secrets.token_urlsafe(32),
            lambda *a, **k: secrets.token_urlsafe(40),
            expires_in,
        ),
    )

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, req: Any) -> None:
            data = req.payload.data
            state.challenges.append(data.get("code_challenge"))
            state.codes[code] = Code(
                code,
                req.client.client_id,
                req.payload.redirect_uri,
                req.payload.scope or "",
                data.get("code_challenge"),
                data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = state.codes.get(code)
            if found and found.client_id == client.client_id and not found.is_expired():
                return found
            return None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            state.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> dict[str, str]:
            return USER

    class RefreshGrant(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
        INCLUDE_NEW_REFRESH_TOKEN = rotate_refresh_tokens

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            token = state.by_refresh(refresh_token)
            return token if token is not None and not token.revoked else None

        def authenticate_user(self, credential: Token) -> dict[str, str]:
            return USER

        def revoke_old_credential(self, credential: Token) -> None:
            credential.revoked = True

    class Revocation(RevocationEndpoint):
        CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
            if token_type_hint == "access_token":
                return state.by_access(token_string)
            if token_type_hint == "refresh_token":
                return state.by_refresh(token_string)
            return state.by_access(token_string) or state.by_refresh(token_string)

        def revoke_token(self, token: Token, req: Any) -> None:
            token.revoked = True
            state.revoked.append(req.form.get("token_type_hint") or "")

    server.register_grant(CodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshGrant)
    server.register_endpoint(Revocation)

    @app.get(authorize_path, endpoint="oauth_authorize")
    def authorize():
        return server.create_authorization_response(grant_user=USER)

    @app.post(token_path, endpoint="oauth_token")
    def issue_token():
        time.sleep(state.token_delay)
        return server.create_token_response()

    if revoke_path:

        @app.post(revoke_path, endpoint="oauth_revoke")
        def revoke():
            return server.create_endpoint_response("revocation")

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string: str) -> Token | None:
            return state.by_access(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())
    return state, protect


def json_error(status: int, body: dict[str, Any]):
    response = jsonify(body)
    response.status_code = status
    return response
