"""Connections of a project to providers: OAuth2 (authorization code + PKCE) and API tokens.

A connection belongs to a project and remembers who made it. Its credential
(the OAuth2 token as JSON: access token, refresh token, expiry; or an API token)
is a secret of :class:`~integrations.secrets.SecretStore`: Fernet-encrypted in the
``secrets`` table, never in a document, never logged (``repr`` of every type
here hides it). The ``connections`` and ``oauth_states`` tables are migration 17.

The OAuth2 flow, with authlib's httpx client (``OAuth2Client``) over the
outbound guard (every request to a provider: ``outbound.GuardedTransport``):

1. :meth:`Connections.start` makes a state and a PKCE code verifier (kept
   encrypted until the callback), and returns the provider's authorize URL
   with the S256 code challenge;
2. :meth:`Connections.finish` takes the callback's state (single use, at most
   ``STATE_TTL`` old) and code, and exchanges the code with the verifier;
3. :meth:`Connections.call` runs a function with an authorized client: an
   access token expired (or within ``LEEWAY`` of it) is refreshed first, and an
   answer 401 refreshes once and tries again; a refreshed token is stored again;
4. :meth:`Connections.delete` revokes the token where the provider can
   (RFC 7009 for Google, Dropbox's own endpoint) and forgets it.

A connection can be paused (:meth:`Connections.set_paused`, ``paused_at``, migration
21): while paused nothing is fetched or pushed for it in any process (no API call, no
token refresh, no scheduled import, no revocation if it is deleted meanwhile); resumed, it
carries on with the token it has. A token refresh is single-flight across every process
on the database (:meth:`Connections._refresh`: a claim on the row, with an expiry).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets as _random
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import OAuth2Token

from integrations.db import transaction
from integrations.oauth_client import OAuth2Client, OAuthError
from integrations.outbound import GuardedTransport, OutboundPolicy, Resolver, system_resolver
from integrations.providers import Provider, provider
from integrations.secrets import SecretStore

T = TypeVar("T")
log = logging.getLogger("tandem.connections")

STATE_TTL = 600.0  # seconds an authorization may take, from start to callback
LEEWAY = 30  # seconds before its expiry that an access token is refreshed
REFRESH_LEASE = 60.0  # seconds a process may hold a connection's refresh claim
REFRESH_POLL = 0.05  # how often a process waiting for another's refresh looks again
TOKEN_KIND = "oauth_token"
API_TOKEN_KIND = "api_token"
VERIFIER_KIND = "pkce_verifier"


class ConnectionError_(Exception):
    """A connection step failed, with a message fit to show (never a token)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class NoSuchConnection(ConnectionError_):
    def __init__(self, connection_id: str) -> None:
        super().__init__(f"no connection {connection_id!r} in this project", 404)


class ConnectionPaused(ConnectionError_):
    def __init__(self, connection: Connection) -> None:
        super().__init__(
            f"the {connection.provider} connection {connection.id!r} is paused: nothing is"
            " fetched or sent for it until it is resumed",
            409,
        )


@dataclass(frozen=True)
class Connection:
    id: str
    project: str
    provider: str
    created_by: str
    account: str
    config: Mapping[str, Any]
    status: str
    created: float
    last_used: float | None = None
    last_error: str | None = None
    credential_ref: str = field(default="", repr=False)
    paused_at: float | None = None  # set while paused: nothing is fetched or pushed for it

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def public(self) -> dict[str, Any]:
        """What REST shows: everything but the credential's reference. A paused connection's
        status is ``paused`` (its own, ``active`` or ``error``, comes back on resume)."""
        return {
            "id": self.id,
            "project": self.project,
            "provider": self.provider,
            "created_by": self.created_by,
            "account": self.account,
            "config": dict(self.config),
            "status": "paused" if self.paused else self.status,
            "created": self.created,
            "last_used": self.last_used,
            "last_error": self.last_error,
            "paused_at": self.paused_at,
        }


_COLUMNS = (
    "id, project, provider, created_by, account, config, status, created, last_used,"
    " last_error, credential, paused_at"
)


def _row(row: tuple[Any, ...]) -> Connection:
    return Connection(
        id=row[0],
        project=row[1],
        provider=row[2],
        created_by=row[3],
        account=row[4],
        config=json.loads(row[5]),
        status=row[6],
        created=row[7],
        last_used=row[8],
        last_error=row[9],
        credential_ref=row[10],
        paused_at=row[11],
    )


class Connections:
    """The connections of every project: SQLite work on ``secrets.worker``'s thread, HTTP
    on worker threads of its own (never the event loop)."""

    def __init__(
        self,
        secrets: SecretStore,
        policy: OutboundPolicy,
        *,
        env: Mapping[str, str] | None = None,
        resolve: Resolver = system_resolver,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secrets = secrets
        self.policy = policy
        self.env = env
        self.resolve = resolve
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return "Connections(<credentials hidden>)"

    def provider(self, name: str) -> Provider:
        return provider(name, self.env)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.secrets.conn

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        return await self.secrets.worker.run(fn, *args)

    def _oauth_client(self, spec: Provider, **kwargs: Any) -> OAuth2Client:
        options: dict[str, Any] = {
            "client_id": spec.client_id,
            "client_secret": spec.client_secret,
            "scope": spec.scope or None,
            "code_challenge_method": "S256",
            "token_endpoint": spec.token_url,
            "leeway": LEEWAY,
            "transport": GuardedTransport(self.policy, self.resolve),
            "timeout": self.policy.httpx_timeout(),
            "follow_redirects": False,
            "trust_env": False,
        }
        options.update(kwargs)
        if options["token_endpoint"] is None:
            del options["token_endpoint"]
        return OAuth2Client(**options)

    # -- the authorization code flow ---------------------------------------------------

    async def start(
        self, project: str, provider_name: str, user: str, redirect_uri: str, return_to: str = ""
    ) -> tuple[str, str]:
        """The provider's authorize URL (state, PKCE S256 challenge) and the state."""
        spec = self.provider(provider_name)
        if spec.auth != "oauth2":
            raise ConnectionError_(
                f"{spec.title} connects with an API token: send api_token instead", 422
            )
        if not spec.configured:
            raise ConnectionError_(
                f"{spec.title} is not set up on this server: the operator sets"
                f" TANDEM_PROVIDER_{spec.name.upper()}_CLIENT_ID and _CLIENT_SECRET",
                409,
            )
        verifier = generate_token(64)  # 64 of [A-Za-z0-9]: RFC 7636 wants 43-128
        client = self._oauth_client(spec, redirect_uri=redirect_uri)
        try:
            url, state = client.create_authorization_url(
                spec.authorize_url, code_verifier=verifier, **dict(spec.authorize_params)
            )
        finally:
            client.close()

        def save() -> None:
            now = self.clock()
            with transaction(self.conn):
                self.conn.execute("DELETE FROM oauth_states WHERE created < ?", (now - STATE_TTL,))
                ref = self.secrets.put_sync(project, VERIFIER_KIND, verifier)
                self.conn.execute(
                    "INSERT INTO oauth_states (state, project, provider, user, verifier,"
                    " redirect_uri, return_to, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (state, project, spec.name, user, ref, redirect_uri, return_to, now),
                )

        await self._db(save)
        return url, state

    async def finish(self, state: str, code: str) -> tuple[Connection, str]:
        """Exchange the callback's code (state checked, used once); returns the new
        connection and where the user wanted to go back to."""

        def take() -> tuple[str, str, str, str, str, str] | None:
            with transaction(self.conn):
                row = self.conn.execute(
                    "SELECT project, provider, user, verifier, redirect_uri, return_to, created"
                    " FROM oauth_states WHERE state = ?",
                    (state,),
                ).fetchone()
                if row is None:
                    return None
                self.conn.execute("DELETE FROM oauth_states WHERE state = ?", (state,))
                verifier = self.secrets.get_sync(row[3])
                self.secrets.delete_sync(row[3])
                if row[6] < self.clock() - STATE_TTL:
                    return None
                return row[0], row[1], row[2], verifier, row[4], row[5]

        taken = await self._db(take) if state else None
        if taken is None:
            raise ConnectionError_(
                "unknown or expired state: start the connection again (it is valid for"
                f" {int(STATE_TTL // 60)} minutes, once)",
                400,
            )
        project, provider_name, user, verifier, redirect_uri, return_to = taken
        spec = self.provider(provider_name)

        def exchange() -> dict[str, Any]:
            client = self._oauth_client(spec, redirect_uri=redirect_uri)
            try:
                token = client.fetch_token(
                    spec.token_url,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                )
                return dict(token)
            finally:
                client.close()

        try:
            token = await asyncio.to_thread(exchange)
        except Exception as e:
            raise ConnectionError_(
                f"{spec.title} did not give a token for that code: {describe_error(e)}", 502
            ) from e
        if "access_token" not in token:
            raise ConnectionError_(f"{spec.title} answered without an access token", 502)
        connection = await self._create(
            project, spec.name, user, TOKEN_KIND, json.dumps(token), account="", config={}
        )
        return connection, return_to

    async def add_api_token(
        self,
        project: str,
        provider_name: str,
        user: str,
        api_token: str,
        *,
        account: str,
        config: Mapping[str, Any],
    ) -> Connection:
        spec = self.provider(provider_name)
        if spec.auth != "api_token":
            raise ConnectionError_(f"{spec.title} connects with OAuth2: start it instead", 422)
        return await self._create(
            project, spec.name, user, API_TOKEN_KIND, api_token, account=account, config=config
        )

    async def _create(
        self,
        project: str,
        provider_name: str,
        user: str,
        kind: str,
        credential: str,
        *,
        account: str,
        config: Mapping[str, Any],
    ) -> Connection:
        connection_id = _random.token_urlsafe(12)

        def insert() -> Connection:
            with transaction(self.conn):
                ref = self.secrets.put_sync(project, kind, credential)
                self.conn.execute(
                    "INSERT INTO connections (id, project, provider, created_by, account, config,"
                    " status, created, credential) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                    (
                        connection_id,
                        project,
                        provider_name,
                        user,
                        account,
                        json.dumps(dict(config)),
                        self.clock(),
                        ref,
                    ),
                )
            return self.get_sync(project, connection_id)

        return await self._db(insert)

    # -- reading and changing connections ----------------------------------------------

    def get_sync(self, project: str, connection_id: str) -> Connection:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM connections WHERE id = ? AND project = ?",
            (connection_id, project),
        ).fetchone()
        if row is None:
            raise NoSuchConnection(connection_id)
        return _row(row)

    async def get(self, project: str, connection_id: str) -> Connection:
        return await self._db(self.get_sync, project, connection_id)

    async def all(self, project: str | None = None) -> list[Connection]:
        def read() -> list[Connection]:
            if project is None:
                rows = self.conn.execute(
                    f"SELECT {_COLUMNS} FROM connections ORDER BY created"
                ).fetchall()
            else:
                rows = self.conn.execute(
                    f"SELECT {_COLUMNS} FROM connections WHERE project = ? ORDER BY created",
                    (project,),
                ).fetchall()
            return [_row(r) for r in rows]

        return await self._db(read)

    async def update(
        self,
        connection: Connection,
        *,
        account: str | None = None,
        config: Mapping[str, Any] | None = None,
        error: str | None = None,
        used: bool = False,
    ) -> Connection:
        def write() -> Connection:
            if account is not None:
                self.conn.execute(
                    "UPDATE connections SET account = ? WHERE id = ?", (account, connection.id)
                )
            if config is not None:
                self.conn.execute(
                    "UPDATE connections SET config = ? WHERE id = ?",
                    (json.dumps(dict(config)), connection.id),
                )
            if used:
                self.conn.execute(
                    "UPDATE connections SET last_used = ?, last_error = ?, status = ? WHERE id = ?",
                    (self.clock(), error, "error" if error else "active", connection.id),
                )
            return self.get_sync(connection.project, connection.id)

        return await self._db(write)

    async def delete(self, project: str, connection_id: str) -> bool:
        """Revoke the connection's token at the provider where it can be, and forget it.
        Returns whether the provider confirmed the revocation (False: it has no revocation
        endpoint, or refused: the user removes the app at the provider)."""
        connection = await self.get(project, connection_id)
        spec = self.provider(connection.provider)
        revoked = False
        if connection.paused:  # no call at all while paused: the user removes the app there
            pass
        elif spec.revoke_style == "dropbox":  # POST /2/auth/token/revoke with a live token
            try:
                answer = await self.call(connection, lambda c: c.post(spec.revoke_url))
                revoked = answer.status_code == 200
            except Exception as e:
                log.warning("revoking a dropbox token failed: %s", describe_error(e))
        elif spec.auth == "oauth2" and spec.revoke_style != "none":
            credential = await self.secrets.get(connection.credential_ref)
            token = json.loads(credential)
            try:
                revoked = await asyncio.to_thread(self._revoke, spec, token)
            except Exception as e:  # the local copy is forgotten whatever the provider says
                log.warning(
                    "revoking a %s token failed: %s",
                    spec.name,
                    describe_error(e),
                    extra={"project": project},
                )

        def forget() -> None:
            with transaction(self.conn):
                self.conn.execute("DELETE FROM connections WHERE id = ?", (connection_id,))
                self.secrets.delete_sync(connection.credential_ref)

        await self._db(forget)
        return revoked

    def _revoke(self, spec: Provider, token: dict[str, Any]) -> bool:
        client = self._oauth_client(spec, token=token)
        try:  # RFC 7009: revoking the refresh token ends its access tokens too
            which = "refresh_token" if token.get("refresh_token") else "access_token"
            answer = client.revoke_token(spec.revoke_url, token=token[which], token_type_hint=which)
            return bool(answer.status_code == 200)
        finally:
            client.close()

    async def set_paused(self, project: str, connection_id: str, paused: bool) -> Connection:
        """Pause (nothing fetched or pushed for it: no API call, no token refresh, no
        scheduled import; a call answers ConnectionPaused) or resume it; pausing one already
        paused keeps its first time. Every process sees it at its next call (read from the
        row each time)."""

        def write() -> Connection:
            if paused:
                self.conn.execute(
                    "UPDATE connections SET paused_at = COALESCE(paused_at, ?)"
                    " WHERE id = ? AND project = ?",
                    (self.clock(), connection_id, project),
                )
            else:
                self.conn.execute(
                    "UPDATE connections SET paused_at = NULL WHERE id = ? AND project = ?",
                    (connection_id, project),
                )
            return self.get_sync(project, connection_id)

        return await self._db(write)

    # -- calling the provider's API ------------------------------------------------------

    async def call(self, connection: Connection, fn: Callable[[httpx.Client], T]) -> T:
        """``fn(client)`` on a worker thread with a client authorized for ``connection``
        (its requests go through the outbound guard). An OAuth2 token is refreshed first
        when it expires within ``LEEWAY``, or after the API answered 401 (then ``fn`` runs
        once more), single-flight across processes (:meth:`_refresh`). Errors are recorded
        on the connection (``last_error``) and raised. A paused connection raises
        ConnectionPaused before anything is sent."""
        spec = self.provider(connection.provider)
        lock = self._locks.setdefault(connection.id, asyncio.Lock())
        async with lock:  # this process's callers one at a time; other processes: _refresh
            connection = await self.get(connection.project, connection.id)
            if connection.paused:
                raise ConnectionPaused(connection)
            credential = await self.secrets.get(connection.credential_ref)
            try:
                if spec.auth == "oauth2":
                    result = await self._call_oauth(spec, connection, json.loads(credential), fn)
                else:
                    result = await asyncio.to_thread(self._call_token, spec, credential, fn)
            except ConnectionPaused:
                raise
            except Exception as e:
                await self.update(connection, error=describe_error(e), used=True)
                raise
            await self.update(connection, used=True)
            return result

    async def _call_oauth(
        self,
        spec: Provider,
        connection: Connection,
        token: dict[str, Any],
        fn: Callable[[httpx.Client], T],
    ) -> T:
        ref = connection.credential_ref
        if OAuth2Token(token).is_expired(leeway=LEEWAY):
            ref, token = await self._refresh(spec, connection, ref, token)
        try:
            return await asyncio.to_thread(self._with_token, spec, token, fn, True)
        except _Unauthorized:
            # the provider ended the access token before its time: refresh once
            if not token.get("refresh_token"):
                raise ConnectionError_(
                    f"{spec.title} refused the token and gave no refresh token: connect again",
                    502,
                ) from None
            ref, token = await self._refresh(spec, connection, ref, token)
            return await asyncio.to_thread(self._with_token, spec, token, fn, False)

    def _with_token(
        self, spec: Provider, token: dict[str, Any], fn: Callable[[httpx.Client], T], watch: bool
    ) -> T:
        # no token endpoint and no leeway: this client never refreshes by itself (every
        # refresh goes through _refresh's claim)
        client = self._oauth_client(spec, token=token, token_endpoint=None, leeway=0)
        if watch:
            client.event_hooks["response"] = [_raise_for_401]
        try:
            return fn(client)
        finally:
            client.close()

    # -- refreshing a token, once for every process ---------------------------------------

    async def _refresh(
        self, spec: Provider, connection: Connection, stale_ref: str, stale: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """A fresh token for ``connection``, whose stored token ``stale_ref`` expired or was
        refused; returns its reference and the token.

        Providers rotate refresh tokens (a refresh token works once), so two processes on
        one database (a server and the CLI, several nodes) must not both refresh. The row is
        the lock: a process claims it with a compare-and-swap (``refresh_holder``, valid
        until ``refresh_until``, taken only while the credential is still ``stale_ref``),
        refreshes at the provider, and stores the new token and frees the claim in one
        transaction. A process that finds the row claimed waits for the credential to
        change and uses the token stored; a claim whose holder died runs out after
        ``REFRESH_LEASE`` seconds and is taken over. Nothing is refreshed while paused."""
        if not stale.get("refresh_token"):
            raise ConnectionError_(f"{spec.title} gave no refresh token: connect again", 502)
        holder = f"{os.getpid()}-{_random.token_hex(6)}"
        give_up = time.monotonic() + REFRESH_LEASE + 5
        while True:
            outcome, ref = await self._db(self._claim, connection.id, stale_ref, holder)
            if outcome == "changed":  # another process refreshed meanwhile
                return ref, json.loads(await self.secrets.get(ref))
            if outcome == "paused":
                raise ConnectionPaused(connection)
            if outcome == "gone":
                raise NoSuchConnection(connection.id)
            if outcome == "claimed":
                break
            if time.monotonic() > give_up:
                raise ConnectionError_(
                    f"another process has been refreshing the {spec.title} token for over"
                    f" {REFRESH_LEASE:g} s; try again",
                    503,
                )
            await asyncio.sleep(REFRESH_POLL)
        try:
            fresh = await asyncio.to_thread(self._refresh_at_provider, spec, stale)
        except BaseException as e:
            await self._db(self._release, connection.id, holder)
            if isinstance(e, OAuthError):  # invalid_grant: the refresh token is no more
                raise ConnectionError_(
                    f"{spec.title} refused to refresh the token ({describe_error(e)}):"
                    " connect again",
                    502,
                ) from e
            raise
        fresh_ref = await self._db(self._store_refreshed, connection, stale_ref, holder, fresh)
        return fresh_ref, fresh

    def _claim(self, connection_id: str, stale_ref: str, holder: str) -> tuple[str, str]:
        now = self.clock()
        claimed = self.conn.execute(
            "UPDATE connections SET refresh_holder = ?, refresh_until = ?"
            " WHERE id = ? AND credential = ? AND paused_at IS NULL"
            " AND (refresh_holder IS NULL OR refresh_until < ?)",
            (holder, now + REFRESH_LEASE, connection_id, stale_ref, now),
        ).rowcount
        if claimed:
            return "claimed", stale_ref
        row = self.conn.execute(
            "SELECT credential, paused_at FROM connections WHERE id = ?", (connection_id,)
        ).fetchone()
        if row is None:
            return "gone", ""
        if row[0] != stale_ref:
            return "changed", str(row[0])
        if row[1] is not None:
            return "paused", ""
        return "held", ""

    def _release(self, connection_id: str, holder: str) -> None:
        self.conn.execute(
            "UPDATE connections SET refresh_holder = NULL, refresh_until = NULL"
            " WHERE id = ? AND refresh_holder = ?",
            (connection_id, holder),
        )

    def _refresh_at_provider(self, spec: Provider, stale: dict[str, Any]) -> dict[str, Any]:
        client = self._oauth_client(spec, token=stale)
        try:
            client.refresh_token(spec.token_url, refresh_token=stale["refresh_token"])
            return dict(client.token)  # keeps the refresh token if none came back
        finally:
            client.close()

    def _store_refreshed(
        self, connection: Connection, stale_ref: str, holder: str, token: dict[str, Any]
    ) -> str:
        with transaction(self.conn):
            ref = self.secrets.put_sync(connection.project, TOKEN_KIND, json.dumps(token))
            stored = self.conn.execute(
                "UPDATE connections SET credential = ?, refresh_holder = NULL,"
                " refresh_until = NULL WHERE id = ? AND credential = ? AND refresh_holder = ?",
                (ref, connection.id, stale_ref, holder),
            ).rowcount
            if stored:
                self.secrets.delete_sync(stale_ref)
            else:  # our claim ran out and another process stored a token: keep ours unsaved
                self.secrets.delete_sync(ref)
        if not stored:
            log.warning(
                "a %s token refresh outlived its claim (over %g s)",
                connection.provider,
                REFRESH_LEASE,
                extra={"project": connection.project},
            )
        return ref if stored else stale_ref

    async def call_with_token(
        self, probe: Connection, api_token: str, fn: Callable[[httpx.Client], T]
    ) -> T:
        """``fn(client)`` with an API token not stored yet (checking it before it is kept)."""
        spec = self.provider(probe.provider)
        return await asyncio.to_thread(self._call_token, spec, api_token, fn)

    def _call_token(self, spec: Provider, api_token: str, fn: Callable[[httpx.Client], T]) -> T:
        headers: dict[str, str] = {}
        auth: httpx.Auth | None = None
        if spec.name == "toggl":
            auth = httpx.BasicAuth(api_token, "api_token")
        else:  # Clockify
            headers["X-Api-Key"] = api_token
        with httpx.Client(
            transport=GuardedTransport(self.policy, self.resolve),
            timeout=self.policy.httpx_timeout(),
            follow_redirects=False,
            trust_env=False,
            headers=headers,
            auth=auth,
        ) as client:
            return fn(client)


class _Unauthorized(Exception):
    pass


def _raise_for_401(response: httpx.Response) -> None:
    if response.status_code == 401 and "token" not in response.request.url.path.rsplit("/", 1)[-1]:
        raise _Unauthorized()


def describe_error(error: BaseException) -> str:
    """What went wrong, without anything secret: the error's type and, for HTTP errors,
    the status and host (never a URL's query, a header or a body)."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"{error.response.status_code} from {error.request.url.host}"
    if isinstance(error, ConnectionError_):
        return str(error)
    name = type(error).__name__
    text = str(error)
    if hasattr(error, "error"):  # authlib's OAuthError: error code and description
        text = f"{getattr(error, 'error', '')}: {getattr(error, 'description', '') or ''}"
    return f"{name}: {text[:200]}" if text else name
