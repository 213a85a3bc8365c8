"""Each provider's proof that a delivery is theirs, checked in constant time. Pure.

    github     X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the secret>
    gitlab     X-Gitlab-Token: the secret itself (GitLab sends it as is)
    bitbucket  X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>

A delivery's id (a replay of the same id changes nothing): GitHub's
X-GitHub-Delivery, GitLab's X-Gitlab-Event-UUID, Bitbucket's X-Request-UUID (else
X-Hook-UUID with the body's digest: that header names the hook, not the delivery);
without one, the body's SHA-256 (the same bytes twice are one delivery).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

Provider = Literal["github", "gitlab", "bitbucket"]
PROVIDERS: tuple[Provider, ...] = ("github", "gitlab", "bitbucket")

SIGNATURE_HEADERS: dict[str, str] = {
    "github": "X-Hub-Signature-256",
    "gitlab": "X-Gitlab-Token",
    "bitbucket": "X-Hub-Signature",
}
EVENT_HEADERS: dict[str, str] = {
    "github": "X-GitHub-Event",
    "gitlab": "X-Gitlab-Event",
    "bitbucket": "X-Event-Key",
}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def hmac_sha256(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_github(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends (Bitbucket's X-Hub-Signature is alike)."""
    return "sha256=" + hmac_sha256(secret, body)


def verify(provider: str, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the delivery carries ``secret``'s proof; compared in constant time."""
    given = _header(headers, SIGNATURE_HEADERS[provider])
    if not given or not secret:
        return False
    if provider == "gitlab":
        return hmac.compare_digest(given.encode(), secret.encode())
    expected = sign_github(secret, body)
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def event_name(provider: str, headers: Mapping[str, str]) -> str:
    return (_header(headers, EVENT_HEADERS[provider]) or "").strip()[:100]


def delivery_id(provider: str, headers: Mapping[str, str], body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    if provider == "github":
        given = _header(headers, "X-GitHub-Delivery")
    elif provider == "gitlab":
        given = _header(headers, "X-Gitlab-Event-UUID")
    else:
        given = _header(headers, "X-Request-UUID")
        if not given:
            hook = _header(headers, "X-Hook-UUID")
            given = f"{hook}:{digest}" if hook else None
    given = (given or "").strip()
    return given[:200] if given else "sha256:" + digest
