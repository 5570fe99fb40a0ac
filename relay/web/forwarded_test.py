"""The relay behind proxies: its public URL and the client's address, from trusted forwarded headers only."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from relay.conftest import MakeClient
from relay.contract import Export
from relay.web.forwarded import (
    PROXY,
    ProxySettings,
    PublicURLError,
    client_address,
    may_carry_credentials,
    parse_public_url,
    parse_trusted_proxies,
    public_base_url,
    public_url,
)

NGINX = "10.0.0.5"
TRUST_NGINX = ProxySettings(trusted_proxies=parse_trusted_proxies([NGINX]))


def _request(
    headers: Mapping[str, str] | list[tuple[str, str]],
    settings: ProxySettings | None = None,
    peer: str = NGINX,
    host: str = "relay:8080",
    socket: tuple[str, int] = ("10.0.0.9", 8080),
) -> web.Request:
    app = web.Application()
    if settings is not None:
        app[PROXY] = settings
    transport = mock.Mock()
    extra = {"peername": (peer, 40000), "sockname": socket}
    transport.get_extra_info.side_effect = lambda name, default=None: extra.get(name, default)
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if not any(k.lower() == "host" for k, _ in items):
        items.append(("Host", host))
    from multidict import CIMultiDict

    return make_mocked_request("GET", "/main/", headers=CIMultiDict(items), app=app, transport=transport)


def test_without_proxies_the_request_is_taken_as_it_came() -> None:
    request = _request({"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "Forwarded": "for=1.2.3.4;proto=https"})
    # Nothing is trusted by default: a client cannot make itself look like another, or like https.
    assert client_address(request) == NGINX
    assert public_base_url(request) == URL("http://relay:8080/")
    assert str(public_url(request, "main/simple/")) == "http://relay:8080/main/simple/"


def test_x_forwarded_headers_of_a_trusted_proxy() -> None:
    request = _request(
        {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "pypi.example.com",
         "X-Forwarded-Prefix": "/relay/"},
        TRUST_NGINX,
    )
    assert client_address(request) == "203.0.113.7"
    assert str(public_base_url(request)) == "https://pypi.example.com/relay/"
    assert str(public_url(request, "feature/x/simple/")) == "https://pypi.example.com/relay/feature/x/simple/"


def test_a_proxy_that_keeps_the_host_header_and_sends_its_port() -> None:
    # AWS ALB: X-Forwarded-Proto and -Port, Host passed through.
    alb = _request({"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443", "X-Forwarded-For": "198.51.100.2"},
                   TRUST_NGINX, host="pypi.example.com")
    assert str(public_base_url(alb)) == "https://pypi.example.com/"
    other_port = _request({"X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}, TRUST_NGINX, host="pypi.example.com")
    assert str(public_base_url(other_port)) == "https://pypi.example.com:8443/"
    # A default port written out is left out, as a browser shows the URL.
    explicit = _request({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pypi.example.com:443"}, TRUST_NGINX)
    assert str(public_base_url(explicit)) == "https://pypi.example.com/"
    v6 = _request({"X-Forwarded-Host": "[2001:db8::1]:8443", "X-Forwarded-Proto": "https"}, TRUST_NGINX)
    assert str(public_base_url(v6)) == "https://[2001:db8::1]:8443/"


def test_a_chain_of_trusted_proxies_ends_at_the_first_address_none_of_them_is() -> None:
    settings = ProxySettings(trusted_proxies=parse_trusted_proxies(["10.0.0.0/8", "192.168.1.1"]))
    # The client forged an X-Forwarded-For; the CDN (192.168.1.1) and nginx appended what they saw.
    request = _request(
        [("X-Forwarded-For", "6.6.6.6, 203.0.113.7"), ("X-Forwarded-For", "192.168.1.1"),
         ("X-Forwarded-Proto", "https, http")],
        settings,
    )
    assert client_address(request) == "203.0.113.7"
    # Two trusted hops: the proto the outermost one (the CDN) saw is the second from the right.
    assert public_base_url(request).scheme == "https"


def test_forwarded_headers_of_a_trusted_proxy() -> None:
    settings = ProxySettings(trusted_proxies=TRUST_NGINX.trusted_proxies, headers="forwarded")
    request = _request(
        {"Forwarded": 'for=6.6.6.6;proto=http, for="[2001:db8:cafe::17]:4711";proto=https;host="pypi.example.com"',
         "X-Forwarded-Prefix": "/relay", "X-Forwarded-Proto": "http", "X-Forwarded-For": "1.1.1.1"},
        settings,
    )
    assert client_address(request) == "2001:db8:cafe::17"
    assert str(public_base_url(request)) == "https://pypi.example.com/relay/"
    # In this mode the X-Forwarded-For/-Proto family is never read, and the other way round.
    only_x = _request({"X-Forwarded-For": "1.1.1.1", "X-Forwarded-Proto": "https"}, settings)
    assert client_address(only_x) == NGINX and public_base_url(only_x).scheme == "http"
    only_rfc = _request({"Forwarded": "for=1.1.1.1;proto=https"}, TRUST_NGINX)
    assert client_address(only_rfc) == NGINX and public_base_url(only_rfc).scheme == "http"


def test_values_that_are_no_host_scheme_or_path_are_ignored() -> None:
    request = _request(
        {"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": 'evil.example/"><script>',
         "X-Forwarded-Prefix": "/../admin", "X-Forwarded-For": "203.0.113.7"},
        TRUST_NGINX,
    )
    assert str(public_base_url(request)) == "http://relay:8080/"
    # A Host header that is no host (any client can send one) is replaced by the socket's address.
    assert str(public_base_url(_request({}, host='relay"><script>alert(1)</script>'))) == "http://10.0.0.9:8080/"


def test_a_public_url_fixes_scheme_host_and_prefix() -> None:
    settings = ProxySettings(public_url=parse_public_url("https://pypi.example.com/relay"),
                             trusted_proxies=TRUST_NGINX.trusted_proxies)
    request = _request({"X-Forwarded-Host": "other.example", "X-Forwarded-For": "203.0.113.7"}, settings)
    assert str(public_base_url(request)) == "https://pypi.example.com/relay/"
    assert client_address(request) == "203.0.113.7"


@pytest.mark.parametrize(
    "text",
    ["pypi.example.com", "ftp://pypi.example.com/", "https://alice:pw@pypi.example.com/", "https://x.example/?a=1",
     "https:///relay", "https://x.example/a/../b"],
)
def test_a_public_url_that_cannot_be_used_is_refused_with_the_fix(text: str) -> None:
    with pytest.raises(PublicURLError, match="--public-url"):
        parse_public_url(text)


def test_trusted_proxies_are_addresses_or_networks() -> None:
    networks = parse_trusted_proxies(["10.0.0.0/8, ::1", "192.168.1.1"])
    assert [str(n) for n in networks] == ["10.0.0.0/8", "::1/128", "192.168.1.1/32"]
    with pytest.raises(PublicURLError, match="--trusted-proxy 'nginx'"):
        parse_trusted_proxies(["nginx"])
    # An IPv4 proxy seen on a dual-stack socket as ::ffff:10.0.0.5 is the same proxy.
    assert ProxySettings(trusted_proxies=networks).trusts("::ffff:10.1.2.3")


def test_credentials_go_into_urls_only_over_tls_or_to_this_machine() -> None:
    assert may_carry_credentials(URL("https://pypi.example.com/"))
    assert may_carry_credentials(URL("http://127.0.0.1:8080/")) and may_carry_credentials(URL("http://[::1]:8080/"))
    assert may_carry_credentials(URL("http://localhost:8080/"))
    assert not may_carry_credentials(URL("http://relay.internal:8080/"))
    assert not may_carry_credentials(URL("http://10.0.0.9:8080/"))


def test_the_access_log_names_the_real_client(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from relay.web.app import AccessLogger

    request = _request({"X-Forwarded-For": "203.0.113.7"}, TRUST_NGINX)
    logger = logging.getLogger("relay.access.test")
    with caplog.at_level(logging.INFO, logger=logger.name):
        AccessLogger(logger, "").log(request, web.Response(status=200), 0.001)
        AccessLogger(logger, "").log(_request({"X-Forwarded-For": "203.0.113.7"}), web.Response(status=200), 0.001)
    lines = [r.getMessage() for r in caplog.records]
    assert " client=203.0.113.7 " in lines[0]
    assert f" client={NGINX} " in lines[1]


BROWSER = {"Accept": "text/html"}


def line(page: str, id: str) -> str:
    from relay.web.pages_test import line as copied

    return copied(page, id)


@pytest.mark.asyncio
async def test_copy_lines_behind_a_tls_proxy_with_a_prefix(make_client: MakeClient, exports: list[Export], tmp_path: Path) -> None:
    import aiohttp

    from relay.web.app import Settings
    from relay.auth.credentials import Authenticator, add_entry, password_entry

    auth_file = tmp_path / "auth"
    add_entry(auth_file, password_entry("alice", "secret", iterations=1000))
    proxy = ProxySettings(trusted_proxies=parse_trusted_proxies(["127.0.0.1"]))
    client = await make_client(settings=Settings(proxy=proxy), auth=Authenticator(auth_file))
    headers = {
        **BROWSER,
        "Authorization": aiohttp.BasicAuth("alice", "secret").encode(),
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pypi.example.com",
        "X-Forwarded-Prefix": "/relay",
    }
    text = await (await client.get("/main/", headers=headers)).text()
    tip = exports[2]
    index = "https://USER:PASSWORD@pypi.example.com/relay/main/simple/"
    extra = "--extra-index-url https://pypi.org/simple"  # this relay has no --upstream
    assert line(text, "line-install") == f"%pip install --index-url {index} {extra} monorepo.chain.a"
    assert f"-c https://USER:PASSWORD@pypi.example.com/relay/{tip.sha}/constraints.txt" in line(text, "line-pinned")
    assert "http://" not in text.split("<body>")[1]
    # A redirect stays relative: the client resolves it under the prefix it used.
    moved = await client.get("/main/simple/Monorepo.Chain.A/", headers=headers, allow_redirects=False)
    assert moved.status == 301 and not moved.headers["Location"].startswith(("http:", "/"))


@pytest.mark.asyncio
async def test_no_credentials_in_copy_lines_over_plain_http(make_client: MakeClient, exports: list[Export], tmp_path: Path) -> None:
    import aiohttp

    from relay.web.app import Settings
    from relay.auth.credentials import Authenticator, add_entry, password_entry

    auth_file = tmp_path / "auth"
    add_entry(auth_file, password_entry("alice", "secret", iterations=1000))
    proxy = ProxySettings(public_url=parse_public_url("http://relay.internal:8080"))
    client = await make_client(settings=Settings(proxy=proxy), auth=Authenticator(auth_file))
    headers = {**BROWSER, "Authorization": aiohttp.BasicAuth("alice", "secret").encode()}
    text = await (await client.get("/main/", headers=headers)).text()
    assert line(text, "line-install") == (
        "%pip install --index-url http://relay.internal:8080/main/simple/ --extra-index-url https://pypi.org/simple "
        "monorepo.chain.a"
    )
    assert "USER:PASSWORD" not in text and "netrc" in text


def test_serve_refuses_a_bad_public_url_or_proxy_and_warns_about_clear_text(tmp_path: Path) -> None:
    from relay.cli import main, proxy_notes

    for option, value in (("--public-url", "relay.example.com"), ("--trusted-proxy", "nginx")):
        with pytest.raises(SystemExit, match=f"relay: {option} 'relay.example.com'|relay: {option} 'nginx'"):
            main(["serve", "--store", str(tmp_path / "store"), option, value])
    http = ProxySettings(public_url=parse_public_url("http://relay.internal:8080/"))
    assert any("clear text" in n for n in proxy_notes(http, "0.0.0.0", auth=True))
    assert any("clear text" in n for n in proxy_notes(ProxySettings(), "0.0.0.0", auth=True))
    assert proxy_notes(ProxySettings(), "127.0.0.1", auth=True) == []
    assert proxy_notes(TRUST_NGINX, "0.0.0.0", auth=True) == []
    assert proxy_notes(ProxySettings(public_url=parse_public_url("https://pypi.example.com/")), "0.0.0.0", auth=True) == []
    assert proxy_notes(http, "0.0.0.0", auth=False) == []
