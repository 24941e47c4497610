"""Which callback URLs a request may give: http(s) only, no credentials, and no address inside
the service's own network in any spelling of it, unless the callback_allow setting names it."""

from __future__ import annotations

import socket
from typing import Any, NoReturn

import pytest

from whisper_transcriber.service.webhooks.http import (
    TargetPolicy,
    TargetRefused,
    allow_entry_problem,
    check_url,
)

GUARDED = TargetPolicy(guarded=True)


@pytest.fixture(autouse=True)
def _no_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_url decides from the URL alone: a name is looked up only when a delivery connects."""

    def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
        pytest.fail("check_url looked a name up")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, refuse)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http:///hook", "no host"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://example.com/#frag", "fragment"),
        ("http://example.com:99999/", "not a URL"),
        ("http://example.com:+80/", "not a URL"),
        ("http://example.com:0/", "port 0"),
        ("http://xn--a.example/", "not a URL"),  # no IDNA name decodes to it
        ("http://\uff41\uff42.com/", "not a URL"),  # fullwidth letters IDNA refuses
        ("http://" + "a" * 64 + ".example/", "not a host name"),  # a label of 64
        ("http://ex%61mple.com/", "not a host name"),
        ("http://example.com\\.127.0.0.1/", "not a host name"),
        ("http://example.com/ x", "space"),
        ("http://example.com/" + "a" * 2100, "longer than"),
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://127.1/", "loopback"),
        ("http://127.0.0.1./", "loopback"),
        ("HTTP://LOCALHOST.:80@127.0.0.1/", "user name or password"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://0177.0.0.1/", "not a URL"),  # octal: httpx will not call it, so nor do we
        ("http://[::1]/", "loopback"),
        ("http://[0:0:0:0:0:0:0:1]:8080/", "loopback"),
        ("http://[::ffff:7f00:1]/", "127.0.0.1, a loopback address"),
        ("http://0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1, a loopback address"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[2002:a00:1::]/", "10.0.0.1, a private address"),  # 6to4
        ("http://[64:ff9b::a9fe:a9fe]/", "169.254.169.254, a link-local address"),  # NAT64
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
    ],
)
def test_a_request_may_not_give_such_a_url(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        check_url(url, GUARDED)


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/x?y=1", "http://93.184.215.14:8080/", "http://[2001:db8::1]/"],
)
def test_public_urls_pass(url: str) -> None:
    if "2001:db8" in url:  # documentation addresses are not public either
        with pytest.raises(TargetRefused):
            check_url(url, GUARDED)
    else:
        assert check_url(url, GUARDED) == url


def test_an_operators_subscription_may_point_anywhere() -> None:
    assert check_url("http://127.0.0.1:8080/hook", TargetPolicy(guarded=False))
    with pytest.raises(TargetRefused, match="only http"):
        check_url("gopher://127.0.0.1/", TargetPolicy(guarded=False))


def test_the_allow_list_names_hosts_and_networks_and_nothing_else() -> None:
    policy = TargetPolicy(guarded=True, allow=("*.example.com", "hooks.lan", "10.0.0.0/8"))
    for url in (
        "https://a.example.com/",
        "https://b.a.example.com/",
        "http://hooks.lan/",
        "http://HOOKS.LAN./",
        "http://10.9.8.7/",
    ):
        assert check_url(url, policy) == url
    with pytest.raises(TargetRefused, match="callback_allow"):
        check_url("http://192.168.1.1/", policy)
    # A name the list does not name may resolve into its networks: checked when connecting.
    assert check_url("http://example.com/", policy)
    assert policy.host_allowed("a.example.com")
    assert not policy.host_allowed("example.com.evil.net")
    assert not policy.host_allowed("evilexample.com")
    assert not policy.host_allowed("evil-example.com")
    assert not policy.host_allowed("example.com")
    assert not policy.host_allowed("hooks.lan.evil.net")
    names_only = TargetPolicy(guarded=True, allow=("*.example.com",))
    for url in ("http://example.com/", "http://evil-example.com/", "http://a.example.com.evil/"):
        with pytest.raises(TargetRefused, match="callback_allow"):
            check_url(url, names_only)


@pytest.mark.parametrize("entry", ["10.0.0.0/8", "192.168.1.20", "fd00::/8", "a.example", "*.b.c"])
def test_allow_entries(entry: str) -> None:
    assert allow_entry_problem(entry) is None


@pytest.mark.parametrize("entry", ["http://x.example", "*", "a..b", "x.example:80", "10.0.0.0/33"])
def test_bad_allow_entries(entry: str) -> None:
    assert allow_entry_problem(entry) is not None


def test_names_are_matched_as_they_are_called() -> None:
    """Unicode names are called by their IDNA form, which is what the allow list names."""
    policy = TargetPolicy(guarded=True, allow=("xn--bcher-kva.example",))
    assert check_url("https://B\u00fccher.example/hook", policy)
    assert check_url("https://xn--bcher-kva.example/hook", policy)
    with pytest.raises(TargetRefused, match="callback_allow"):
        check_url("https://bucher.example/hook", policy)


def test_scheme_and_host_are_case_insensitive() -> None:
    policy = TargetPolicy(guarded=True, allow=("hooks.example.com",))
    assert check_url("HTTPS://Hooks.Example.COM/Path", policy) == "HTTPS://Hooks.Example.COM/Path"
    with pytest.raises(TargetRefused, match="loopback"):
        check_url("HTTP://127.0.0.1/", GUARDED)
