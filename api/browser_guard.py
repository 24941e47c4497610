"""No writes from other sites' pages, and nothing at all for DNS-rebinding pages.

Two checks on every request, in a pure ASGI middleware placed before the API key's:

- Host. A rebinding page reaches the service under the attacker's own name (Host:
  attacker.example, same-origin as far as the browser knows), so a request for a name that is not
  one of the service's is refused (400). Always allowed: IP literals (rebinding needs a name),
  names without a dot (localhost, docker compose services), names under domains no public DNS
  answers (.localhost, .local, .internal, .home.arpa), this machine's name and the bound address;
  more with the allowed_hosts setting. GET /health is exempt: it tells nothing, and monitors call
  it by whatever name they know.
- Origin. A state-changing request (POST, PUT, PATCH, DELETE) that a browser marks as sent by a
  page of another origin (an Origin that is not the request's own, or Sec-Fetch-Site cross-site
  or same-site) is refused (403) unless allowed_origins names that origin. A form post and a
  no-cors fetch need no preflight, so this check is what stops them, with or without an API key.
  Clients that are not browsers (curl, Bazarr, the OpenAI SDK) send neither header.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from whisper_transcriber.api.asgi_responses import send_error

ANY = "*"
# Private-use domains: a public DNS server cannot answer for them, so no rebinding page can.
PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FOREIGN_SITES = frozenset({"cross-site", "same-site"})  # same-site: another port, a subdomain
HOST_EXEMPT_PATHS = frozenset({"/health"})


def host_and_port(authority: str) -> tuple[str, int | None]:
    """'Example.com.:9000' -> ('example.com', 9000); '[::1]:80' -> ('::1', 80)."""
    value = authority.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""
    return name.rstrip("."), int(port) if port.isdigit() else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normal_origin(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


@dataclass(frozen=True)
class BrowserPolicy:
    """The names the service answers to besides the built-in ones, and the other origins whose
    pages may write. Host entries are names (".example.com": the domain and its subdomains)."""

    hosts: frozenset[str] = frozenset()
    origins: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, hosts: Iterable[str] = (), origins: Iterable[str] = (), bound: str = "127.0.0.1"
    ) -> BrowserPolicy:
        names = {host_and_port(name)[0] for name in (*hosts, socket.gethostname(), bound)}
        return cls(frozenset(names), frozenset(normal_origin(o) for o in origins))

    def host_allowed(self, host: str | None) -> bool:
        if host is None:  # HTTP/1.0 without Host: no browser sends that
            return True
        name = host_and_port(host)[0]
        return (
            ANY in self.hosts
            or "." not in name
            or name.endswith(PRIVATE_SUFFIXES)
            or _is_ip(name)
            or name in self.hosts
            or any(e.startswith(".") and f".{name}".endswith(e) for e in self.hosts)
        )

    def cross_origin_refusal(
        self, method: str, host: str | None, origin: str | None, fetch_site: str | None
    ) -> str | None:
        """Why a browser's request from another origin may not change anything; None if it may."""
        if method in SAFE_METHODS or ANY in self.origins:
            return None
        if origin is not None and normal_origin(origin) in self.origins:
            return None
        if origin is not None and not _same_origin(origin, host):
            return (
                f"a page of another origin ({origin}) may not {method} here; "
                "the allowed_origins setting lists the origins that may"
            )
        if fetch_site in FOREIGN_SITES:
            return (
                f"the browser says this {method} comes from a page of another site "
                f"(Sec-Fetch-Site: {fetch_site}); the allowed_origins setting lists the origins "
                "that may"
            )
        return None


def _same_origin(origin: str, host: str | None) -> bool:
    """Whether Origin names the host and port the request was sent to. The scheme is not
    compared: behind a TLS proxy the service hears http from a page served over https, and a
    browser leaves the default port out of both headers alike."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False  # "null" (a sandboxed frame, a file), or a scheme no page of ours has
    return host_and_port(parts.netloc) == host_and_port(host)


class BrowserGuardMiddleware:
    def __init__(self, app: ASGIApp, policy: BrowserPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if scope["path"] not in HOST_EXEMPT_PATHS and not self.policy.host_allowed(host):
            await send_error(
                send,
                400,
                f"{host!r} is not a name of this service (a DNS-rebinding page would send it); "
                "add it to the allowed_hosts setting, or '*' to answer to every name",
            )
            return
        refusal = self.policy.cross_origin_refusal(
            scope["method"], host, headers.get("origin"), headers.get("sec-fetch-site")
        )
        if refusal is not None:
            await send_error(send, 403, refusal)
            return
        await self.app(scope, receive, send)
