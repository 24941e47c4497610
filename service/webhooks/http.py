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
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
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
# A label of a host name as resolvers take it (IDNA-encoded): letters, digits, hyphens inside (and
# underscores, which DNS allows), 1-63 of them; a name has at most 253 characters.
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


class TargetRefused(ValueError):
    """A callback URL this service will not call; str(exc) is a sentence for a 400 answer."""


@dataclass(frozen=True)
class TargetPolicy:
    """Where deliveries may go. guarded=False: an operator's own subscription, any address.
    guarded=True: a URL someone gave in a request: loopback, link-local, private (RFC 1918,
    unique-local fc00::/7), CGNAT 100.64/10, multicast, reserved, unspecified and any other
    non-global address (and the IPv4-mapped, 6to4, Teredo and NAT64 forms of them, e.g.
    ::ffff:127.0.0.1) are refused. When `allow` is given, a guarded delivery goes only where it
    names, and there whatever the address: host names (exact, case-insensitive; '*.example.com'
    for its subdomains, not example.com itself) and networks ('10.0.0.0/8', '192.168.1.5',
    '::1/128'). A name it does not name may still be called when its addresses are in its
    networks (only those addresses are connected to)."""

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
    """Checks a callback URL when it is given (no DNS lookup): http or https, a host (a valid
    name or an address), no user:password@, no #fragment, at most 2048 characters, a port
    1-65535. With policy.guarded, an address in a refused range (127.1, 2130706433 and
    0x7f000001 are 127.0.0.1) is refused at once, and so is a name when `allow` names hosts only
    and not this one. Returns the URL unchanged. Raises TargetRefused."""
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
    host = _called_host(url, host)
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


def _called_host(url: str, host: str) -> str:
    """The host as a delivery will call it (httpx's parse, IDNA-encoded), after checking that it
    is the host urlsplit saw: a URL the two read differently, or a host no resolver takes, is
    refused when given rather than failing (or surprising) at every attempt."""
    try:
        parsed = httpx.URL(url)
        _ = parsed.host  # decoding the name back, as httpx does when sending (raising then)
        called = parsed.raw_host.decode("ascii").lower()
        seen = httpx.URL(f"http://{_bracketed(host)}/").raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, ValueError) as exc:  # idna's errors are UnicodeErrors
        raise TargetRefused(f"not a URL: {exc}") from None
    if called != seen:
        raise TargetRefused(f"the URL's host is ambiguous ({host!r} or {called!r})")
    if _literal(called) is None and not _is_host_name(called):
        raise TargetRefused(f"{host!r} is not a host name")
    return called


def _is_host_name(host: str) -> bool:
    name = host.removesuffix(".")
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class Answer:
    """What one delivery attempt came to."""

    status: int | None  # None when no (whole) answer came: refused, cannot connect, timed out
    excerpt: str  # the start of the answer's body, decoded with errors="replace", <= 500 chars
    error: str | None  # None when a 2xx came; else a short sentence ("HTTP 500", ...)

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
    # identity: the answer is kept as raw bytes (see _one_request), so ask for it uncompressed.
    sent = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",
    }
    sent.update({k.lower(): v for k, v in headers.items()})
    transport = _GuardedTransport(policy, deadline)
    try:
        with httpx.Client(
            transport=transport, trust_env=False, follow_redirects=False, timeout=timeout_s
        ) as client:
            for _hop in range(max(0, max_redirects) + 1):
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
                        "re-sent as GET",
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
    except httpx.InvalidURL as exc:  # check_url passed it, so httpx should take it; if not, say so
        return Answer(None, "", f"cannot send to this URL: {exc}")


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
        # Raw bytes (not decompressed: a small gzip bomb stays small), as far as the limit.
        # Past it the rest is left unread and the status still counts: a 2xx with a long body
        # took the event (error None, the excerpt cut short); a receiver's answer is not ours
        # to judge by its length.
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
    # A final dot ("127.0.0.1.") is the root of a name; some resolvers take the address anyway.
    host = host.strip("[]").removesuffix(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host.lower()):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _resolve(host: str, port: int, deadline: float) -> list[tuple[IPAddress, str]]:
    """Each address of the host once: as checked, and as connected to (an IPv6 link-local one
    keeps its %zone). The lookup runs in a thread of its own: getaddrinfo has no timeout, and a
    slow resolver must not hold the attempt past its deadline (the thread ends when it ends)."""
    found: list[tuple[Any, ...]] = []
    failure: list[Exception] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name="webhook-resolve", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise httpcore.ConnectTimeout(f"looking up {host} took too long")
    if failure:
        raise httpcore.ConnectError(f"cannot resolve {host}: {failure[0]}")
    addresses: list[tuple[IPAddress, str]] = []
    for _family, _type, _proto, _name, sockaddr in found:
        connect_to = str(sockaddr[0])
        address = ipaddress.ip_address(connect_to.split("%", 1)[0])
        if all(address != seen for seen, _ in addresses):
            addresses.append((address, connect_to))
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
        addresses = _resolve(host, port, self.deadline)
        allowed: list[str] = []
        if self.policy.guarded and self.policy.host_allowed(host):
            allowed = [connect_to for _address, connect_to in addresses]
        else:
            # The addresses the policy allows are tried in the resolver's order; the others
            # are never connected to (a name may mix a public address with an inner one).
            refusals: list[str] = []
            for address, connect_to in addresses:
                reason = self.policy.address_refusal(address)
                if reason is None:
                    allowed.append(connect_to)
                else:
                    refusals.append(reason)
            if refusals and not allowed:
                raise _Refused("; ".join(refusals))
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
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
        raise failure


@cache
def _tls_context() -> ssl.SSLContext:
    """certifi's roots, verifying the certificate against the host name (never SSL_CERT_FILE
    and the like from the environment). Made once: loading the roots takes a while, and a
    client context may be shared between threads."""
    return httpx.create_ssl_context(trust_env=False)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: TargetPolicy, deadline: float) -> None:
        super().__init__(verify=_tls_context(), trust_env=False, retries=0)
        # httpx builds its pool without a way to pass a network backend: the same pool, with
        # ours (httpx's own HTTPTransport does nothing else with it). The pool connects to
        # the address the backend chose, but TLS's SNI and certificate check and the Host
        # header still use the URL's host.
        self._pool = httpcore.ConnectionPool(
            ssl_context=_tls_context(),
            max_connections=1,
            retries=0,
            network_backend=_GuardedBackend(policy, deadline),
        )
