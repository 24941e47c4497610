"""One delivery attempt over HTTP, and where deliveries may go.

A URL someone gave in a request (a callback) must not make this service call into the network it
runs in: loopback, link-local, private, shared and reserved addresses are refused unless the
callback_allow setting names them. The check is made on the URL when it is given (check_url) and
again on every address a delivery connects to: the host is resolved here, each address checked,
and the connection made to the checked address (a name that resolves elsewhere by the time of the
delivery, DNS rebinding, gains nothing). TLS still verifies the certificate against the name.

Every attempt, an operator's subscription's too: no proxy from the environment (it would connect
for us, unchecked), one deadline for the whole attempt (a receiver that trickles bytes cannot hold
a sender), at most max_answer_bytes of the answer read, redirects only on the same host.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_CHARS = 2048
EXCERPT_CHARS = 500
USER_AGENT = "whisper-transcriber-webhooks"
# Addresses that are neither private nor public in Python's tables, named for the message.
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # an IPv4 address behind a NAT64 gateway
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TargetRefused(ValueError):
    """A callback URL this service will not call; str(exc) is a sentence for a 400 answer."""


@dataclass(frozen=True)
class TargetPolicy:
    """Where deliveries may go. guarded=False: an operator's own subscription, any address.
    guarded=True: a URL someone gave in a request, held to public addresses, or, when `allow`
    is given, to what it names only: host names ('*.example.com' for its subdomains) and
    networks ('10.0.0.0/8', '192.168.1.5', '::1/128')."""

    guarded: bool
    allow: tuple[str, ...] = ()

    def _networks(self) -> list[IPNetwork]:
        return [net for entry in self.allow if (net := _network(entry)) is not None]

    def _hosts(self) -> list[str]:
        return [entry.lower() for entry in self.allow if _network(entry) is None]

    def host_allowed(self, host: str) -> bool:
        """The host is named by the allow list (its addresses are then not checked)."""
        host = host.lower().rstrip(".")
        for pattern in self._hosts():
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why a guarded delivery may not connect to this address; None when it may."""
        if not self.guarded:
            return None
        if self.allow:
            if any(_contains(net, address) for net in self._networks()):
                return None
            return f"{address} is not in the callback_allow setting"
        return _refusal(address)


def allow_entry_problem(entry: str) -> str | None:
    """Why an entry of the callback_allow setting is neither a network nor a host name."""
    if _network(entry) is not None:
        return None
    name = entry.removeprefix("*.")
    labels = name.split(".")
    if name and all(
        label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    ):
        return None
    return (
        f"{entry!r} is neither a network (10.0.0.0/8, 192.168.1.20, fd00::/8) nor a host name "
        "(hooks.example.com, *.example.com)"
    )


def check_url(url: str, policy: TargetPolicy) -> str:
    """Checks a callback URL when it is given (no DNS lookup); returns it unchanged. Raises
    TargetRefused."""
    if len(url) > MAX_URL_CHARS:
        raise TargetRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise TargetRefused("the URL has a space or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"only http and https URLs are called, not {parts.scheme or 'this'}")
    host = parts.hostname
    if not host:
        raise TargetRefused("the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL may not carry a user name or password")
    if parts.fragment:
        raise TargetRefused("the URL may not have a #fragment")
    if port == 0:
        raise TargetRefused("port 0 is no port")
    if not policy.guarded or policy.host_allowed(host):
        return url
    literal = _literal(host)
    if literal is not None:
        reason = policy.address_refusal(literal)
        if reason is not None:
            raise TargetRefused(f"refused: {reason}")
    elif policy.allow and not policy._networks():
        raise TargetRefused(f"{host} is not in the callback_allow setting")
    return url


@dataclass(frozen=True)
class Answer:
    status: int | None  # None when no answer came
    excerpt: str  # the start of the answer's body
    error: str | None  # None when a 2xx came

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    policy: TargetPolicy,
    timeout_s: float = 10.0,
    max_answer_bytes: int = 64 * 1024,
    max_redirects: int = 3,
) -> Answer:
    """POST body with headers (plus Content-Type: application/json and our User-Agent unless
    given). Never raises for the network's or the receiver's trouble: returns an Answer."""
    deadline = time.monotonic() + timeout_s
    sent = {"content-type": "application/json", "user-agent": USER_AGENT}
    sent.update({k.lower(): v for k, v in headers.items()})
    transport = _GuardedTransport(policy, deadline)
    try:
        with httpx.Client(
            transport=transport, trust_env=False, follow_redirects=False, timeout=timeout_s
        ) as client:
            for _hop in range(max_redirects + 1):
                try:
                    check_url(url, policy)
                except TargetRefused as exc:
                    return Answer(None, "", str(exc))
                status, excerpt, location = _one_request(
                    client, url, body, sent, max_answer_bytes, deadline
                )
                if not 300 <= status < 400 or location is None:
                    error = None if 200 <= status < 300 else f"HTTP {status}"
                    return Answer(status, excerpt, error)
                target = urljoin(url, location)
                if not _same_host(url, target):
                    return Answer(status, excerpt, f"redirected to another host ({target})")
                if status not in (307, 308):
                    return Answer(
                        status,
                        excerpt,
                        f"redirected (HTTP {status}) to {target}; webhook deliveries are not "
                        "sent again as GET",
                    )
                url = target
            return Answer(status, excerpt, f"more than {max_redirects} redirects")
    except _Refused as exc:
        return Answer(None, "", f"refused: {exc}")
    except httpx.TimeoutException:
        return Answer(None, "", f"timed out after {timeout_s:g} s")
    except _DeadlinePassed:
        return Answer(None, "", f"timed out after {timeout_s:g} s")
    except httpx.HTTPError as exc:
        cause = _refused_cause(exc)
        if cause is not None:
            return Answer(None, "", f"refused: {cause}")
        if time.monotonic() >= deadline:
            return Answer(None, "", f"timed out after {timeout_s:g} s")
        return Answer(None, "", f"cannot connect: {exc or type(exc).__name__}")
    except (OSError, ssl.SSLError) as exc:
        return Answer(None, "", f"cannot connect: {exc}")


def _one_request(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    max_answer_bytes: int,
    deadline: float,
) -> tuple[int, str, str | None]:
    """The status, the start of the body, and a redirect's Location."""
    with client.stream("POST", url, content=body, headers=dict(headers)) as response:
        kept = bytearray()
        # Raw bytes (not decompressed: a small gzip bomb stays small), as far as the limit;
        # a longer answer's status still counts.
        for chunk in response.iter_raw():
            kept += chunk
            if len(kept) >= max_answer_bytes:
                break
            if time.monotonic() >= deadline:
                raise _DeadlinePassed
        excerpt = bytes(kept[:max_answer_bytes]).decode("utf-8", "replace")[:EXCERPT_CHARS]
        return response.status_code, excerpt, response.headers.get("location")


def _same_host(url: str, target: str) -> bool:
    """A redirect stays on the host: the same name, the same port or the default port of an
    http -> https upgrade."""
    a, b = urlsplit(url), urlsplit(target)
    if (
        b.scheme not in ("http", "https")
        or (a.hostname or "").lower() != (b.hostname or "").lower()
    ):
        return False
    port_a = a.port or _DEFAULT_PORTS[a.scheme]
    port_b = b.port or _DEFAULT_PORTS[b.scheme]
    if a.scheme == b.scheme:
        return port_a == port_b
    upgrade = a.scheme == "http" and b.scheme == "https"
    return upgrade and port_a == 80 and port_b == 443


# -- addresses ---------------------------------------------------------------------------------


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def _contains(network: IPNetwork, address: IPAddress) -> bool:
    return any(
        candidate.version == network.version and candidate in network
        for candidate in _forms(address)
    )


def _forms(address: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, Teredo)."""
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            forms.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            forms.append(address.sixtofour)
        if address.teredo is not None:
            forms.append(address.teredo[1])
        if address in _NAT64:
            forms.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return forms


def _refusal(address: IPAddress) -> str | None:
    """Why a request's callback may not reach this address by default; None when public."""
    for form in reversed(_forms(address)):  # what an IPv6 form carries says most
        for reason, test in (
            ("a loopback address", form.is_loopback),
            ("a link-local address", form.is_link_local),
            ("an unspecified address", form.is_unspecified),
            ("a multicast address", form.is_multicast),
            ("a shared (carrier-grade NAT) address", form.version == 4 and form in _SHARED),
            ("a reserved address", form.is_reserved),
            ("a private address", form.is_private),
            ("not a public address", not form.is_global),
        ):
            if test:
                return (
                    f"{address} is {reason}"
                    if form == address
                    else f"{address} is {form}, {reason}"
                )
    return None


def _literal(host: str) -> IPAddress | None:
    """The address a host written as one means, in any form a resolver takes (127.1,
    2130706433, 0x7f000001 are 127.0.0.1)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


# -- the connection: checked addresses, one deadline ------------------------------------------


class _Refused(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


def _refused_cause(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _Refused):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most until the attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the attempt's time is up")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._left(timeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to an address the policy allows, the one it
    checked."""

    def __init__(self, policy: TargetPolicy, deadline: float) -> None:
        self.policy = policy
        self.deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        allowed: list[str] = []
        if self.policy.guarded and self.policy.host_allowed(host):
            allowed = [str(a) for a in _resolve(host, port)]
        else:
            refusals: list[str] = []
            for address in _resolve(host, port):
                reason = self.policy.address_refusal(address)
                if reason is None:
                    allowed.append(str(address))
                else:
                    refusals.append(reason)
            if not allowed:
                raise _Refused("; ".join(refusals) or f"{host} has no address")
        failure: Exception | None = None
        for chosen in allowed:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the attempt's time is up")
            wait = left if timeout is None else min(timeout, left)
            try:
                stream = super().connect_tcp(chosen, port, wait, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self.deadline)
        assert failure is not None
        raise failure


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: TargetPolicy, deadline: float) -> None:
        super().__init__(trust_env=False, retries=0)
        # httpx builds its pool without a way to pass a network backend: the same pool, with
        # ours (httpx's own HTTPTransport does nothing else with it).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=1,
            retries=0,
            network_backend=_GuardedBackend(policy, deadline),
        )
