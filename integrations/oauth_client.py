"""authlib's OAuth2 client on httpx, imported without its deprecation notice.

authlib 1.9 prefers httpx2, a fork of httpx, and warns at import (on every process start,
on stderr, ahead of the server's own first line) when it runs on httpx instead. Tandem's
outbound guard (``integrations.outbound.GuardedTransport``) is an httpx transport, and
authlib still supports httpx: the notice says nothing an operator can act on, so it is
silenced here, for this one import only.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

__all__ = ["OAuth2Client", "OAuthError"]
