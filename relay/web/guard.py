"""The one middleware every request passes: path safety, credentials, and errors as answers."""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote

from aiohttp import BasicAuth, web

from relay.auth.credentials import Credentials, TooManyChecks
from relay.errors import RelayError
from relay.storage.store import StoreUnavailable
from relay.web.forwarded import client_address
from relay.web.keys import AUTH, Handler, OPEN_PATHS, PASSWORD_CHECKS

_UNSAFE_RAW = re.compile(r"%(2f|5c|00)|\\|\x00", re.IGNORECASE)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request, whatever the route: path safety, then credentials, then a RefError as its answer.

    One middleware, not one per concern: each layer is another coroutine per request.
    """
    refusal = _path_refusal(request.raw_path.split("?", 1)[0])
    if refusal is not None:
        return error_response(400, refusal)
    auth = request.app.get(AUTH)
    if auth is not None and request.path not in OPEN_PATHS:
        credentials = _credentials(request.headers.get("Authorization"))
        user = auth.check(credentials, slow=False)
        if user is False:
            assert credentials is not None
            try:
                user = await request.app[PASSWORD_CHECKS].check(credentials, client_address(request))
            except TooManyChecks as e:
                response = error_response(429, str(e))
                response.headers["Retry-After"] = str(e.retry_after)
                return response
        if not user:
            response = error_response(401, "authentication required: give a user and password or a token")
            response.headers["WWW-Authenticate"] = 'Basic realm="relay", charset="UTF-8"'
            return response
    try:
        return await handler(request)
    except StoreUnavailable as e:
        return error_response(503, f"the store is unavailable: {e}; try again shortly")
    except RelayError as e:
        response = error_response(e.status, e.message)
        response.headers.update(e.headers)
        return response


def _credentials(authorization: str | None) -> Credentials | None:
    """What an Authorization header gives: Basic user and password (UTF-8, as the challenge says), or a
    Bearer token; None for no header, another scheme or a malformed one (which is then a 401)."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return Credentials.token(value.strip())
    try:
        # aiohttp takes one space after the scheme; RFC 7235 allows several, as the relay always did.
        basic = BasicAuth.decode(f"{scheme} {value.strip()}", encoding="utf-8")
    except ValueError:  # not Basic, not base64, no colon, not UTF-8
        return None
    return Credentials(basic.login, basic.password)


@functools.lru_cache(maxsize=4096)
def _path_refusal(raw: str) -> str | None:
    """Why a raw path is refused (traversal, encoded separators), or None; clients repeat paths."""
    segments = unquote(raw).split("/")
    if _UNSAFE_RAW.search(raw) or not raw.startswith("/") or any(s in (".", "..") for s in segments):
        return f"path {raw!r} is not allowed: no '..', '.', encoded slashes or backslashes"
    if "" in segments[1:-1]:
        return f"path {raw!r} is not allowed: empty path segment"
    return None


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers={"Cache-Control": "no-store"})
