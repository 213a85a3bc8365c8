"""The outbound guard: every request the server makes on a user's behalf goes through here.

A URL a user gave us (a push subscription's endpoint; later webhooks and
connectors) must not make the server call itself, its network or its cloud's
metadata service (SSRF). So, unless the operator allows private addresses
(``TANDEM_OUTBOUND_ALLOW_PRIVATE=true``, for a push relay on the same machine
or network, and the tests):

- only ``https`` URLs, with a host name or a public address;
- the host is resolved once, and *every* address it resolves to must be public:
  not loopback, private (RFC 1918, ULA), link-local, CGNAT (100.64/10),
  multicast, reserved, unspecified, documentation or benchmarking, and no
  cloud metadata address; IPv6 addresses that embed an IPv4 one (mapped,
  NAT64, 6to4, Teredo) are judged by that IPv4 address too;
- the connection is made to the address that was checked (the TLS name check
  and SNI still use the host name), so a DNS answer that changes between the
  check and the connection (DNS rebinding) cannot send it elsewhere;
- redirects are not followed unless the caller asks (``max_redirects``, at most
  ``MAX_REDIRECTS``); then each hop's URL goes through every check above again,
  after its own DNS resolution, before anything is sent to it; timeouts are
  short, on every request, and at most ``MAX_RESPONSE_BYTES`` of an answer are
  read;
- httpx's log line of each request shows only the URL's scheme, host and port
  (a webhook URL's path is a secret).

The HTTP client is httpx (already the server's dependency); pinning the
address uses httpcore's ``sni_hostname`` request extension.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

MAX_RESPONSE_BYTES = 64 * 1024
MAX_REDIRECTS = 5  # the most any caller may ask to follow
REDIRECT_CODES = (301, 302, 303, 307, 308)

BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this" network
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT (and Alibaba Cloud's metadata, 100.100.100.200)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (AWS, GCP, Azure metadata: 169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (AWS metadata over IPv6: fd00:ec2::254)
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class _RedactRequestLines(logging.Filter):
    """httpx logs every request's full URL at INFO ("HTTP Request: POST <url> ..."); a
    webhook URL's path is a secret, so that line keeps only the scheme, host and port."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL):
            url = args[1]
            redacted = f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}/…"
            record.args = (args[0], redacted, *args[2:])
        return True


if not any(isinstance(f, _RedactRequestLines) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_RedactRequestLines())


class OutboundRefused(ValueError):
    """A URL the server will not call, with a reason fit to show the user."""


class HostUnresolved(OutboundRefused):
    """The URL's host does not resolve (now: DNS may answer later)."""


class TooManyRedirects(OutboundRefused):
    """A redirect past the number the caller allowed."""


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    timeout: float = 5.0  # seconds for each read and write
    connect_timeout: float = 3.0

    def httpx_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=self.connect_timeout)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    out = []
    if address.ipv4_mapped is not None:
        out.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        out.append(address.sixtofour)
    if address.teredo is not None:
        out.extend(address.teredo)
    if address in NAT64:
        out.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return out


def is_public(address: IPAddress) -> bool:
    """Whether the server may connect to ``address`` on a user's behalf."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded and not all(is_public(a) for a in embedded):
            return False
        if address.ipv4_mapped is not None:
            return True  # judged as the IPv4 address it is
    if any(address in net for net in BLOCKED_NETWORKS if net.version == address.version):
        return False
    return address.is_global and not address.is_multicast and not address.is_reserved


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``address``) and what to call it (``host``)."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress

    def pinned_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return urlunsplit((parts.scheme, f"{literal}:{self.port}", parts.path, parts.query, ""))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def check_url(url: str, policy: OutboundPolicy, resolve: Resolver = system_resolver) -> Target:
    """The URL's target, resolved and checked; raises OutboundRefused saying why not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise OutboundRefused(f"not a valid URL: {e}") from e
    scheme = parts.scheme.lower()
    allowed_schemes = ("https", "http") if policy.allow_private else ("https",)
    if scheme not in allowed_schemes:
        raise OutboundRefused("the server only calls https:// URLs")
    host = parts.hostname
    if not host:
        raise OutboundRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("the URL may not carry a user name or password")
    port = port or (443 if scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            resolved = resolve(host, port)
        except (OSError, UnicodeError) as e:
            raise HostUnresolved(f"the host {host!r} does not resolve") from e
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
        if not addresses:
            raise HostUnresolved(f"the host {host!r} does not resolve")
    if not policy.allow_private:
        for address in addresses:
            if not is_public(address):
                raise OutboundRefused(
                    f"the host {host!r} is not public ({address} is a loopback, private,"
                    " link-local, shared, multicast, reserved or metadata address)"
                )
    return Target(url, scheme, host, port, addresses[0])


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    reason: str
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS client context (certifi's CA bundle) for every request: making one is the
    bulk of creating an httpx client (tens of ms of CPU, with the GIL held)."""
    return httpx.create_ssl_context(trust_env=False)


def post(
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    policy: OutboundPolicy,
    resolve: Resolver = system_resolver,
    max_redirects: int = 0,
    transport: httpx.BaseTransport | None = None,
) -> OutboundResponse:
    """POST to a user-given URL through the guard (blocking: call it from a worker thread).

    With ``max_redirects`` 0 (the default) a redirect is answered as it is (3xx). Above
    0, up to that many redirects are followed, each new URL checked (resolved, judged,
    pinned) like the first: 307 and 308 send the same POST again, 301, 302 and 303 a GET
    without a body (as browsers do); a redirect past the limit raises TooManyRedirects.
    Raises OutboundRefused for a URL the guard refuses (HostUnresolved when its host does
    not resolve), httpx.HTTPError for network failures and timeouts. ``transport`` is
    for tests (an httpx transport in place of the network).
    """
    if not 0 <= max_redirects <= MAX_REDIRECTS:
        raise ValueError(f"max_redirects must be between 0 and {MAX_REDIRECTS}")
    method = "POST"
    body: bytes | None = content
    with httpx.Client(
        timeout=policy.httpx_timeout(),
        follow_redirects=False,
        trust_env=False,
        transport=transport,
        verify=tls_context(),
    ) as client:
        for hop in range(max_redirects + 1):
            response = _send(client, method, url, body, headers, policy, resolve)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_CODES or not location or max_redirects == 0:
                return response
            if hop == max_redirects:
                raise TooManyRedirects(f"more than {max_redirects} redirects")
            url = urljoin(url, location)
            if response.status_code in (301, 302, 303):
                method, body = "GET", None
                headers = {
                    k: v
                    for k, v in headers.items()
                    if k.lower() not in ("content-type", "content-length")
                }
    raise AssertionError("unreachable")  # pragma: no cover


def _send(
    client: httpx.Client,
    method: str,
    url: str,
    content: bytes | None,
    headers: Mapping[str, str],
    policy: OutboundPolicy,
    resolve: Resolver,
) -> OutboundResponse:
    target = check_url(url, policy, resolve)
    request_headers = {k: v for k, v in headers.items() if k.lower() != "host"}
    request_headers["Host"] = target.host_header
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with client.stream(
        method,
        target.pinned_url(),
        content=content,
        headers=request_headers,
        extensions=extensions,
    ) as response:
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= MAX_RESPONSE_BYTES:
                break
        return OutboundResponse(
            response.status_code,
            response.reason_phrase,
            dict(response.headers),
            bytes(data[:MAX_RESPONSE_BYTES]),
        )


class GuardedSession:
    """What pywebpush wants of a ``requests.Session`` (``post``), through the guard."""

    def __init__(self, policy: OutboundPolicy, resolve: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolve = resolve

    def post(
        self,
        url: str,
        *,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_ignored: object,
    ) -> OutboundResponse:
        body = data.encode() if isinstance(data, str) else (data or b"")
        policy = self.policy
        if timeout is not None:  # never longer than the policy's
            policy = replace(policy, timeout=min(timeout, policy.timeout))
        return post(url, content=body, headers=headers or {}, policy=policy, resolve=self.resolve)


MAX_API_RESPONSE_BYTES = 4 * 1024 * 1024  # a provider's API answer (a page of files, entries)


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that sends every request through the guard: its URL checked and
    its host pinned to the checked address, like :func:`post` (for clients that make many
    kinds of requests: authlib's OAuth2 client, the provider APIs). Redirects are not
    followed (the client is made with ``follow_redirects=False``); at most ``max_bytes``
    of an answer are read (more: ``httpx.DecodingError``)."""

    def __init__(
        self,
        policy: OutboundPolicy,
        resolve: Resolver = system_resolver,
        *,
        max_bytes: int = MAX_API_RESPONSE_BYTES,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.resolve = resolve
        self.max_bytes = max_bytes
        self._inner = inner or httpx.HTTPTransport(verify=tls_context(), trust_env=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = check_url(str(request.url), self.policy, self.resolve)
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
        headers.append((b"Host", target.host_header.encode("ascii")))
        extensions = dict(request.extensions)
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        pinned = httpx.Request(
            request.method,
            httpx.URL(target.pinned_url()),
            headers=headers,
            content=request.read(),
            extensions=extensions,
        )
        response = self._inner.handle_request(pinned)
        data = bytearray()
        try:
            stream = response.stream
            assert isinstance(stream, httpx.SyncByteStream)
            for chunk in stream:
                data += chunk
                if len(data) > self.max_bytes:
                    raise httpx.DecodingError(
                        f"the answer of {target.host} is larger than {self.max_bytes} bytes",
                        request=request,
                    )
        finally:
            response.close()
        headers_out = [
            (k, v)
            for k, v in response.headers.raw
            if k.lower() not in (b"transfer-encoding", b"content-length")  # decoded by the client
        ]
        return httpx.Response(
            response.status_code,
            headers=headers_out,
            content=bytes(data),
            extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
            request=request,
        )

    def close(self) -> None:
        self._inner.close()


def guarded_client(policy: OutboundPolicy, resolve: Resolver = system_resolver) -> httpx.Client:
    """An httpx client whose every request goes through the guard (see GuardedTransport)."""
    return httpx.Client(
        transport=GuardedTransport(policy, resolve),
        timeout=policy.httpx_timeout(),
        follow_redirects=False,
        trust_env=False,
    )
