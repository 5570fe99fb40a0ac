"""The relay as its clients see it: its public URL and the client's address, behind trusted proxies.

Behind a TLS-terminating proxy the relay's own view of a request (scheme `http`, the proxy's
address, the path without the proxy's prefix) is not what the client used. The operator says which
proxies are trusted (`--trusted-proxy`) and which headers they set (`--proxy-headers`): the
`X-Forwarded-For/-Proto/-Host/-Port/-Prefix` family, or RFC 7239 `Forwarded`. Only those headers,
and only from a trusted peer, are read; the other family is ignored, so a client cannot smuggle one
through a proxy that does not rewrite it. `--public-url` fixes the scheme, host and path prefix
outright (the client's address still comes from the trusted headers).

`public_base_url(request)` is what every absolute URL the relay prints starts with;
`client_address(request)` is the client for rate limits and the access log.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence, Union

from aiohttp import web
from yarl import URL

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
ProxyHeaders = Literal["x-forwarded", "forwarded"]
PROXY_HEADERS: tuple[ProxyHeaders, ...] = ("x-forwarded", "forwarded")

# What a forwarded value must look like to be used; anything else is ignored (the next source is used).
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class PublicURLError(ValueError):
    """A --public-url or --trusted-proxy value that cannot be used; the message says why and what to give."""


@dataclass(frozen=True)
class ProxySettings:
    """How to see requests as their clients sent them (none of it set: as the relay receives them)."""

    public_url: URL | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    headers: ProxyHeaders = "x-forwarded"

    def trusts(self, address: str | None) -> bool:
        if not address or not self.trusted_proxies:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # `unknown`, an obfuscated node: never a trusted proxy
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.trusted_proxies)


PROXY = web.AppKey("proxy", ProxySettings)


@dataclass(frozen=True)
class Seen:
    """One request as its client sent it."""

    client: str
    base_url: URL  # scheme://host[:port]/prefix/ of the relay, always ending in "/"


def parse_public_url(text: str) -> URL:
    """`https://pypi.example.com/relay` -> the base URL every absolute URL starts with (ends in "/")."""
    if any(s in (".", "..") for s in text.split("?", 1)[0].split("#", 1)[0].split("/")[3:]):
        raise PublicURLError(f"--public-url {text!r}: its path must be plain segments, without '.' or '..'")
    try:
        url = URL(text.strip())
        host = url.raw_host
    except (ValueError, TypeError) as e:
        raise PublicURLError(f"--public-url {text!r} is not a URL ({e}); give e.g. https://relay.example.com/") from None
    if url.scheme not in _DEFAULT_PORTS or not host:
        raise PublicURLError(
            f"--public-url {text!r} must be an absolute http:// or https:// URL with a host, "
            "e.g. https://relay.example.com/ or https://example.com/relay/"
        )
    if url.user is not None or url.password is not None:
        raise PublicURLError(
            f"--public-url {text!r} holds credentials: give the URL without them (the pages show where "
            "a user's own go)"
        )
    if url.raw_query_string or url.raw_fragment:
        raise PublicURLError(f"--public-url {text!r} has a query or fragment: give only scheme, host and path")
    segments = [s for s in url.raw_path.split("/") if s]
    if any(s in (".", "..") or not _PREFIX_SEGMENT.fullmatch(s) for s in segments):
        raise PublicURLError(f"--public-url {text!r}: its path must be plain segments, without '.' or '..'")
    return url.with_path("/" + "".join(s + "/" for s in segments), encoded=True)


def parse_trusted_proxies(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """`10.0.0.5`, `10.0.0.0/8`, `::1` or comma-separated lists of them -> networks."""
    networks: list[IPNetwork] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise PublicURLError(
                    f"--trusted-proxy {item!r} is not an IP address or network; give the address your "
                    "proxy connects from, e.g. 10.0.0.5, 10.0.0.0/8 or ::1"
                ) from None
    return tuple(networks)


def seen(request: web.BaseRequest) -> Seen:
    """The request as its client sent it (computed once per request)."""
    cached = request.get(_SEEN_KEY)
    if isinstance(cached, Seen):
        return cached
    result = _see(request, _settings(request))
    request[_SEEN_KEY] = result
    return result


def public_base_url(request: web.BaseRequest) -> URL:
    """The relay's base URL as the client reached it: `https://relay.example.com/prefix/` (ends in "/")."""
    return seen(request).base_url


def public_url(request: web.BaseRequest, relative: str) -> URL:
    """An absolute URL of the relay for a path relative to its root (`main/simple/`), already quoted."""
    base = public_base_url(request)
    return base.with_path(base.raw_path + relative.lstrip("/"), encoded=True)


def client_address(request: web.BaseRequest) -> str:
    """The client's address: the peer, or, behind trusted proxies, the first address they did not vouch for."""
    return seen(request).client


def may_carry_credentials(url: URL) -> bool:
    """Whether a URL may show `USER:PASSWORD@`: only over TLS, or to this very machine."""
    if url.scheme == "https":
        return True
    host = (url.raw_host or "").strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def with_credentials_placeholder(url: URL, user: str = "USER", password: str = "PASSWORD") -> URL:
    """`https://host/...` -> `https://USER:PASSWORD@host/...` (the line a user fills in)."""
    return url.with_user(user).with_password(password)


# How the headers are read.

_SEEN_KEY = "relay.web.forwarded.seen"
_NO_PROXY = ProxySettings()


def _settings(request: web.BaseRequest) -> ProxySettings:
    try:
        app = request.app  # type: ignore[attr-defined]
    except (AssertionError, AttributeError):
        return _NO_PROXY  # a request aiohttp could not parse or route: no application
    return app.get(PROXY, _NO_PROXY)  # type: ignore[no-any-return]


def _see(request: web.BaseRequest, settings: ProxySettings) -> Seen:
    peer = request.remote or ""
    forwarded: Mapping[str, str] = {}
    client = peer
    if settings.trusts(peer):
        if settings.headers == "forwarded":
            client, forwarded = _through_forwarded(request, settings, peer)
        else:
            client, forwarded = _through_x_forwarded(request, settings, peer)
    if settings.public_url is not None:
        return Seen(client, settings.public_url)
    scheme = forwarded.get("proto", "").lower()
    if scheme not in _DEFAULT_PORTS:
        scheme = request.scheme
    host = forwarded.get("host", "")
    if not _HOST.fullmatch(host):
        host = request.host if _HOST.fullmatch(request.host or "") else _socket_host(request)
    name, _, number = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, number = host, ""
    port = forwarded.get("port", "")
    if not number and port.isdigit():
        number = port  # X-Forwarded-Port: where the Host header says no port
    # A default port is left out, as a browser shows it.
    if number.isdigit() and 0 < int(number) < 65536 and int(number) != _DEFAULT_PORTS[scheme]:
        host = f"{name}:{int(number)}"
    else:
        host = name
    prefix = _prefix(forwarded.get("prefix", ""))
    return Seen(client, URL(f"{scheme}://{host}{prefix}/", encoded=True))


def _through_x_forwarded(
    request: web.BaseRequest, settings: ProxySettings, peer: str
) -> tuple[str, Mapping[str, str]]:
    """Walk X-Forwarded-For from the right while the hop is a trusted proxy; read the other headers
    for the outermost trusted proxy (a list: its element counted from the right, else the first)."""
    chain = _values(request.headers.getall("X-Forwarded-For", []))
    client, hops = peer, 0
    for address in reversed(chain):
        hops += 1
        client = _node(address)
        if not settings.trusts(client):
            break
    hops = max(hops, 1)
    found = {}
    for name, header in (("proto", "X-Forwarded-Proto"), ("host", "X-Forwarded-Host"),
                         ("port", "X-Forwarded-Port"), ("prefix", "X-Forwarded-Prefix")):
        values = _values(request.headers.getall(header, []))
        if values:
            found[name] = values[-hops] if len(values) >= hops else values[0]
    return client, found


def _through_forwarded(request: web.BaseRequest, settings: ProxySettings, peer: str) -> tuple[str, Mapping[str, str]]:
    """Walk RFC 7239 elements from the right (aiohttp parses them) while the hop is trusted; the
    element of the outermost trusted proxy says the client's proto and host. There is no standard
    prefix parameter: X-Forwarded-Prefix is read with it."""
    client = peer
    chosen: Mapping[str, str] = {}
    elements: Sequence[Mapping[str, str]] = request.forwarded
    for element in reversed(elements):
        client = _node(element.get("for", "unknown"))
        chosen = element
        if not settings.trusts(client):
            break
    found = {k: chosen[k] for k in ("proto", "host") if k in chosen}
    prefixes = _values(request.headers.getall("X-Forwarded-Prefix", []))
    if prefixes:
        found["prefix"] = prefixes[-1]
    return client, found


def _values(headers: Iterable[str]) -> list[str]:
    return [v.strip() for header in headers for v in header.split(",") if v.strip()]


def _node(value: str) -> str:
    """A forwarded node without its port: `[2001:db8::1]:4711` -> `2001:db8::1`, `1.2.3.4:80` -> `1.2.3.4`."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _prefix(value: str) -> str:
    """A proxy's path prefix (`/relay`, `/relay/`) without its trailing slash, or "" if not usable."""
    segments = [s for s in value.split("/") if s]
    if not value.startswith("/") or any(s in (".", "..") or not _PREFIX_SEGMENT.fullmatch(s) for s in segments):
        return ""
    return "".join("/" + s for s in segments)


def _socket_host(request: web.BaseRequest) -> str:
    """host:port of the socket the request came in on: for a request whose Host header is no host."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = str(sockname[0]), int(sockname[1])
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "localhost"
