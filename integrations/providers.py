"""The providers Tandem connects to: how each authenticates, and where its endpoints are.

Two kinds of credentials:

- ``oauth2``: the authorization code grant with PKCE (RFC 7636, S256) through
  authlib; the token (access + refresh) is kept encrypted (``integrations.connections``).
  Google (Drive), Dropbox, Microsoft (OneDrive, Graph) and Harvest.
- ``api_token``: a personal API token the user pastes, kept encrypted the same
  way: Toggl (HTTP basic ``<token>:api_token``) and Clockify (``X-Api-Key``).

Every endpoint is configurable, so tests (and a proxy, a sovereign cloud) use
other hosts. In order of precedence:

1. ``TANDEM_PROVIDERS``: JSON, ``{"google": {"token_url": "http://..."}}``, one URL per
   endpoint key (``authorize_url``, ``token_url``, ``revoke_url``, ``api_url``,
   ``accounts_url``);
2. ``TANDEM_PROVIDER_<NAME>_URL``: one base URL for the whole provider: every default
   endpoint keeps its path and gets this scheme, host and port (a stand-in serving
   the provider's own paths on one port);
3. the provider's real endpoints.

Client credentials of the OAuth2 apps come from ``TANDEM_PROVIDER_<NAME>_CLIENT_ID`` and
``TANDEM_PROVIDER_<NAME>_CLIENT_SECRET`` (never logged, never in a document).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

AuthKind = Literal["oauth2", "api_token"]
Category = Literal["files", "time"]
ENDPOINT_KEYS = ("authorize_url", "token_url", "revoke_url", "api_url", "accounts_url")


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    auth: AuthKind
    category: Category
    api_url: str
    authorize_url: str = ""
    token_url: str = ""
    revoke_url: str = ""  # empty: the provider has no token revocation endpoint
    revoke_style: Literal["rfc7009", "dropbox", "none"] = "none"
    accounts_url: str = ""  # Harvest: which accounts a token may use
    scope: str = ""
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)

    @property
    def configured(self) -> bool:
        """Whether a connection can be made (an OAuth2 provider needs its app's client id)."""
        return self.auth == "api_token" or bool(self.client_id)


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "google",
            "Google Drive",
            "oauth2",
            "files",
            api_url="https://www.googleapis.com",
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",
            revoke_url="https://oauth2.googleapis.com/revoke",
            revoke_style="rfc7009",
            scope="https://www.googleapis.com/auth/drive.metadata.readonly",
            # a refresh token is only given with access_type=offline (and again on consent)
            authorize_params={"access_type": "offline", "prompt": "consent"},
        ),
        Provider(
            "dropbox",
            "Dropbox",
            "oauth2",
            "files",
            api_url="https://api.dropboxapi.com",
            authorize_url="https://www.dropbox.com/oauth2/authorize",
            token_url="https://api.dropboxapi.com/oauth2/token",
            revoke_url="https://api.dropboxapi.com/2/auth/token/revoke",
            revoke_style="dropbox",
            scope="files.metadata.read",
            authorize_params={"token_access_type": "offline"},
        ),
        Provider(
            "microsoft",
            "OneDrive",
            "oauth2",
            "files",
            api_url="https://graph.microsoft.com",
            authorize_url="https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            token_url="https://login.microsoftonline.com/common/oauth2/v2.0/token",
            # the Microsoft identity platform has no token revocation endpoint
            scope="offline_access Files.Read",
        ),
        Provider(
            "harvest",
            "Harvest",
            "oauth2",
            "time",
            api_url="https://api.harvestapp.com",
            authorize_url="https://id.getharvest.com/oauth2/authorize",
            token_url="https://id.getharvest.com/api/v2/oauth2/token",
            accounts_url="https://id.getharvest.com/api/v2/accounts",
        ),
        Provider(
            "toggl", "Toggl Track", "api_token", "time", api_url="https://api.track.toggl.com"
        ),
        Provider("clockify", "Clockify", "api_token", "time", api_url="https://api.clockify.me"),
    )
}


class UnknownProvider(KeyError):
    def __str__(self) -> str:
        return f"unknown provider {self.args[0]!r}; known: {', '.join(PROVIDERS)}"


def _rebase(url: str, base: str) -> str:
    if not url:
        return url
    parts, new = urlsplit(url), urlsplit(base)
    path = new.path.rstrip("/") + parts.path
    return urlunsplit((new.scheme, new.netloc, path, parts.query, ""))


def provider(name: str, env: Mapping[str, str] | None = None) -> Provider:
    """The provider ``name`` with its endpoints and client credentials as configured in
    ``env`` (the process environment by default). Raises UnknownProvider, or ValueError
    for a malformed ``TANDEM_PROVIDERS``."""
    env = os.environ if env is None else env
    try:
        spec = PROVIDERS[name]
    except KeyError:
        raise UnknownProvider(name) from None
    upper = name.upper()
    changes: dict[str, Any] = {}
    base = env.get(f"TANDEM_PROVIDER_{upper}_URL", "").strip()
    if base:
        for key in ENDPOINT_KEYS:
            changes[key] = _rebase(getattr(spec, key), base)
    raw = env.get("TANDEM_PROVIDERS", "").strip()
    if raw:
        try:
            table = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"TANDEM_PROVIDERS is not JSON: {e}") from e
        entry = table.get(name, {}) if isinstance(table, dict) else None
        if not isinstance(entry, dict):
            raise ValueError(f"TANDEM_PROVIDERS.{name} must be an object of endpoint URLs")
        for key, value in entry.items():
            if key not in ENDPOINT_KEYS or not isinstance(value, str):
                raise ValueError(
                    f"TANDEM_PROVIDERS.{name}.{key}: expected one of {', '.join(ENDPOINT_KEYS)}"
                    " with a URL string"
                )
            changes[key] = value
    changes["client_id"] = env.get(f"TANDEM_PROVIDER_{upper}_CLIENT_ID", "")
    changes["client_secret"] = env.get(f"TANDEM_PROVIDER_{upper}_CLIENT_SECRET", "")
    return replace(spec, **changes)
