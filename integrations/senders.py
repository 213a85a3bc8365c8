"""One sender per outbound channel: webhook, Slack, Teams, email.

The outbox (``integrations.outbox``) hands a sender one :class:`Message` (the
secret URL already resolved) and records the :class:`SendResult`:

- ``delivered``: a 2xx answer (or the SMTP server took the mail);
- ``retry``: 5xx, 408, 429, timeouts, connection errors, a host that does not
  resolve, an SMTP 4xx; ``retry_after`` carries the answer's ``Retry-After``;
- ``dead``: any other 4xx (410 Gone: the hook was deleted), a URL the outbound
  guard refuses (a private or metadata address, also when a redirect leads
  there), too many redirects, an SMTP 5xx, email not configured.

Every HTTP request goes through ``integrations.outbound`` (resolved, checked,
pinned; redirects followed up to ``MAX_REDIRECTS`` with every hop checked
again; timeouts on every request), from a worker thread. Every request carries
``Idempotency-Key`` (the same for every attempt of one message: receivers
dedup by it) and ``X-Tandem-Delivery`` (the outbox row id).

Webhook: the payload as JSON, signed: ``X-Tandem-Signature-256:
sha256=<hex HMAC-SHA256 of the exact body bytes>`` with the project's signing
secret (``SecretStore.signing_secret``). A receiver verifies it with
``hmac.compare_digest(header, "sha256=" + hmac.new(secret, body, sha256).hexdigest())``.

Slack (incoming webhook): a payload holding ``blocks`` or ``text`` is a Slack
message already (Block Kit) and goes as it is; ``{"title", "text", "url"}`` is
made into one. Teams (incoming webhook): a payload with ``attachments`` goes as
it is, an Adaptive Card (``"type": "AdaptiveCard"``) is wrapped in the message
envelope, ``{"title", "text", "url"}`` is made into a card.

Email (SMTP, aiosmtplib): payload ``{"to": [addresses], "subject", "text",
"html"?}``; ``Message-ID`` is derived from the idempotency key, so a mail sent
twice (a crash between the SMTP server's OK and our record) is recognisably the
same message.

Error texts are secret-free: a sender never puts a URL in one, and
:func:`scrub` removes the URL (and its path) from any library message.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import urlsplit

import aiosmtplib
import anyio
import httpx

from integrations.outbound import (
    HostUnresolved,
    OutboundPolicy,
    OutboundRefused,
    OutboundResponse,
    Resolver,
    post,
    system_resolver,
)

Outcome = Literal["delivered", "retry", "dead"]

DEFAULT_REDIRECTS = 3
MAX_ERROR_CHARS = 500
USER_AGENT = "Tandem-Outbox/1"


@dataclass(frozen=True)
class Message:
    """One outbound message as a sender sees it (the outbox row, its secret resolved)."""

    id: int
    project: str
    key: str  # the idempotency key
    channel: str
    payload: dict[str, Any]
    url: str | None = None  # webhook / slack / teams: the resolved secret URL
    signing_secret: str | None = None  # webhook


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    status: int | None = None  # HTTP status / SMTP code, if one came
    error: str | None = None  # secret-free
    retry_after: float | None = None  # seconds, from Retry-After

    @staticmethod
    def ok(status: int | None = None) -> SendResult:
        return SendResult("delivered", status)


@dataclass(frozen=True)
class SmtpConfig:
    """TANDEM_SMTP_*: where mail goes. ``security``: ``starttls`` (upgrade a plain
    connection, port 587), ``tls`` (TLS from the start, port 465) or ``none``."""

    host: str = ""
    port: int = 587
    user: str = ""
    password: str = field(default="", repr=False)
    security: str = "starttls"
    from_address: str = ""
    timeout: float = 30.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    @property
    def configured(self) -> bool:
        return bool(self.host and self.from_address)

    @classmethod
    def from_settings(cls, settings: object) -> SmtpConfig:
        """From an object with the ``smtp_*`` attributes of ``sync_server`` settings."""

        def get(name: str, default: Any) -> Any:
            return getattr(settings, name, default)

        security = str(get("smtp_security", "starttls")).lower()
        if security not in ("starttls", "tls", "none"):
            raise ValueError("TANDEM_SMTP_SECURITY must be starttls, tls or none")
        return cls(
            host=str(get("smtp_host", "")),
            port=int(get("smtp_port", 587)),
            user=str(get("smtp_user", "")),
            password=str(get("smtp_password", "")),
            security=security,
            from_address=str(get("smtp_from", "")),
            timeout=float(get("smtp_timeout_seconds", 30.0)),
        )


def idempotency_header(key: str) -> str:
    """The ``Idempotency-Key`` value for an outbox key: the key itself when it is a plain
    token, else its SHA-256 (a header value must be printable ASCII)."""
    if re.fullmatch(r"[A-Za-z0-9._:@/+=-]{1,200}", key):
        return key
    return "sha256-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Tandem-Signature-256`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` without any of ``secrets`` (URLs, their paths and queries), cut to size."""
    for secret in secrets:
        if not secret:
            continue
        pieces = [secret]
        try:
            parts = urlsplit(secret)
            pieces += [p for p in (parts.path, parts.query) if len(p) > 1]
        except ValueError:
            pass
        for piece in sorted(pieces, key=len, reverse=True):
            text = text.replace(piece, "…")
    return text[:MAX_ERROR_CHARS]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(response: OutboundResponse) -> SendResult:
    """2xx delivered; 408, 429 and 5xx retried (Retry-After honoured); anything else dead."""
    status = response.status_code
    if 200 <= status < 300:
        return SendResult.ok(status)
    reason = f"HTTP {status} {response.reason}".strip()
    if status in (408, 429) or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return SendResult("retry", status, reason, retry_after)
    return SendResult("dead", status, reason)


def slack_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    if "blocks" in payload or ("text" in payload and "title" not in payload):
        return dict(payload)
    title = str(payload.get("title") or "")
    text = str(payload.get("text") or "")
    blocks: list[dict[str, Any]] = []
    if title:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": title[:150]}})
    if text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    if payload.get("url"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in Tandem"},
                        "url": str(payload["url"]),
                    }
                ],
            }
        )
    return {"text": title or text, "blocks": blocks}


def teams_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    if "attachments" in payload:
        return dict(payload)
    if payload.get("type") == "AdaptiveCard":
        card: dict[str, Any] = dict(payload)
    else:
        body: list[dict[str, Any]] = []
        if payload.get("title"):
            body.append(
                {
                    "type": "TextBlock",
                    "text": str(payload["title"]),
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                }
            )
        if payload.get("text"):
            body.append({"type": "TextBlock", "text": str(payload["text"]), "wrap": True})
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
        }
        if payload.get("url"):
            card["actions"] = [
                {"type": "Action.OpenUrl", "title": "Open in Tandem", "url": str(payload["url"])}
            ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


class Senders:
    """Sends a :class:`Message` on its channel. HTTP runs on worker threads (at most
    ``concurrency`` at once), through the outbound guard."""

    def __init__(
        self,
        policy: OutboundPolicy,
        smtp: SmtpConfig | None = None,
        *,
        resolve: Resolver = system_resolver,
        max_redirects: int = DEFAULT_REDIRECTS,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,  # tests: in place of the network
    ) -> None:
        self.policy = policy
        self.smtp = smtp or SmtpConfig()
        self.resolve = resolve
        self.max_redirects = max_redirects
        self.transport = transport
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def send(self, message: Message) -> SendResult:
        if message.channel == "email":
            return await self.send_email(message)
        if message.channel not in ("webhook", "slack", "teams"):
            return SendResult("dead", error=f"unknown channel {message.channel!r}")
        if not message.url:
            return SendResult("dead", error="no URL to send to")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": idempotency_header(message.key),
            "X-Tandem-Delivery": str(message.id),
        }
        if message.channel == "webhook":
            body = encode_json(message.payload)
            if not message.signing_secret:
                return SendResult("dead", error="no signing secret")
            headers["X-Tandem-Signature-256"] = sign(message.signing_secret, body)
        elif message.channel == "slack":
            body = encode_json(slack_body(message.payload))
        else:
            body = encode_json(teams_body(message.payload))
        return await self.post(message.url, body, headers)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        try:
            response = await anyio.to_thread.run_sync(
                lambda: post(
                    url,
                    content=body,
                    headers=headers,
                    policy=self.policy,
                    resolve=self.resolve,
                    max_redirects=self.max_redirects,
                    transport=self.transport,
                ),
                limiter=self._limiter,
                abandon_on_cancel=True,
            )
        except HostUnresolved as e:
            return SendResult("retry", error=scrub(str(e), [url]))
        except OutboundRefused as e:
            return SendResult("dead", error=scrub(f"refused by the outbound guard: {e}", [url]))
        except httpx.TimeoutException as e:
            return SendResult("retry", error=scrub(f"timed out ({type(e).__name__})", [url]))
        except (httpx.HTTPError, OSError) as e:
            detail = scrub(str(e), [url])
            return SendResult("retry", error=f"{type(e).__name__}: {detail}"[:MAX_ERROR_CHARS])
        return classify(response)

    async def send_email(self, message: Message) -> SendResult:
        smtp = self.smtp
        if not smtp.configured:
            return SendResult("dead", error="email is not configured (TANDEM_SMTP_HOST, _FROM)")
        payload = message.payload
        to = payload.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to or not all(isinstance(a, str) for a in to):
            return SendResult("dead", error="payload.to must list one or more addresses")
        mail = EmailMessage()
        mail["From"] = smtp.from_address
        mail["To"] = ", ".join(to)
        mail["Subject"] = str(payload.get("subject") or "(no subject)")
        mail["Date"] = email.utils.formatdate(localtime=False)
        digest = hashlib.sha256(message.key.encode("utf-8")).hexdigest()[:32]
        domain = smtp.from_address.rpartition("@")[2] or "tandem.invalid"
        mail["Message-ID"] = f"<{digest}@{domain}>"
        mail["X-Tandem-Delivery"] = str(message.id)
        mail["Idempotency-Key"] = idempotency_header(message.key)
        mail.set_content(str(payload.get("text") or ""))
        if payload.get("html"):
            mail.add_alternative(str(payload["html"]), subtype="html")
        try:
            await aiosmtplib.send(
                mail,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.user or None,
                password=smtp.password or None,
                use_tls=smtp.security == "tls",
                start_tls=smtp.security == "starttls",
                timeout=smtp.timeout,
                tls_context=smtp.tls_context,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            permanent = all(500 <= c < 600 for c in codes)
            error = f"SMTP recipients refused ({', '.join(str(c) for c in codes)})"
            return SendResult("dead" if permanent else "retry", codes[0] if codes else None, error)
        except aiosmtplib.SMTPResponseException as e:
            error = f"SMTP {e.code}: {scrub(e.message, [smtp.password])}"
            return SendResult("dead" if 500 <= e.code < 600 else "retry", e.code, error)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            detail = scrub(str(e), [smtp.password])
            return SendResult("retry", error=f"{type(e).__name__}: {detail}"[:MAX_ERROR_CHARS])
        return SendResult.ok(250)
