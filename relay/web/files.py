"""Wheels and .metadata files: from memory, a stream from the store, or a redirect to it."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from relay import resources
from relay.contract import ContractError
from relay.index.refs import RefError
from relay.resources import is_resource_error
from relay.storage.store import Blob, NotListed, Store, StoreUnavailable
from relay.web.keys import FILES, SETTINGS, STORE
from relay.web.views import cache_control, etag_matches, resolve_view

logger = logging.getLogger("relay")
async def dist_file(request: web.Request) -> web.StreamResponse:
    filename = request.match_info["filename"]
    view = await resolve_view(request)
    store = request.app[STORE]
    for export in view.exports:
        digest = export.digest(filename)
        if digest is None:
            continue
        sha256, size = digest
        kind = "application/octet-stream" if filename.endswith(".whl") else "text/plain; charset=utf-8"
        headers = {
            "Cache-Control": cache_control(request, view),
            "Content-Type": kind,
            # The content's own hash: the same file has the same ETag under every ref.
            "ETag": f'"{sha256}"',
        }
        store.touch(export.key)
        if etag_matches(request, headers["ETag"]):
            return web.Response(status=304, headers=headers)
        cache = request.app[FILES]
        # A file in memory needs no store: it was checked against this sha256 when it was read.
        body = cache.get(sha256) if cache.fits(size) else None
        if body is not None:
            return web.Response(body=body, headers=headers)
        try:
            return await _send_file(request, store, export.key, filename, sha256, size, headers)
        except NotListed:
            continue  # evicted or removed since the listing
    raise RefError(404, f"no file {filename!r} at {view.ref!r}")


async def _send_file(
    request: web.Request, store: Store, key: str, filename: str, sha256: str, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """A file from the store: small ones read whole, checked and kept in memory; large ones streamed
    (checked by the store) or, with --redirect-files, fetched by the client from a short-lived URL."""
    cache = request.app[FILES]
    where = f"{key}/{filename}"
    loop = asyncio.get_running_loop()
    try:
        if request.app[SETTINGS].redirect_files and not cache.fits(size):
            url = await store.url(key, filename)
            if url is not None:
                # Not cached anywhere: the URL expires; the file under it never changes.
                raise web.HTTPFound(url, headers={"Cache-Control": "no-store", "ETag": headers["ETag"]})
        with store.pin(key):
            if cache.fits(size):
                raw = await store.read(key, filename)
                body = await loop.run_in_executor(None, cache.check, raw, sha256, where)
                cache.put(sha256, body)
                return web.Response(body=body, headers=headers)
            async with store.open(key, filename) as blob:
                if blob.size != size:
                    raise ContractError(f"{where}: {blob.size} bytes, the manifest says {size}")
                return await _stream(request, blob, headers)
    except StoreUnavailable as e:
        logger.warning("serving %s: %s", where, e)
        raise RefError(503, f"the store is unavailable: {e}; try again shortly") from None
    except ContractError as e:
        logger.error("serving %s: %s", where, e)
        raise RefError(502, f"the export {key} is damaged: {filename} cannot be served") from None
    except OSError as e:
        if not is_resource_error(e):
            logger.error("serving %s: %s", where, e)
            raise RefError(502, f"the export {key} is damaged: {filename} cannot be served") from None
        resources.report("serving files", e)
        raise RefError(503, "the relay is short of file descriptors or memory; retry shortly") from None


async def _stream(request: web.Request, blob: Blob, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    response.content_length = blob.size
    writer = await response.prepare(request)
    if request.method != "HEAD" and writer is not None:
        if blob.file is not None:
            # What aiohttp's FileResponse does: the headers first, then the kernel copies the file.
            await writer.drain()
            assert request.transport is not None
            await asyncio.get_running_loop().sendfile(request.transport, blob.file, 0, blob.size)  # type: ignore[arg-type]
        else:
            try:
                async for chunk in blob.chunks:
                    await response.write(chunk)
            except (ContractError, StoreUnavailable) as e:
                # The status line and part of the body are out: the one honest answer left is a
                # response cut off before its last byte (the store holds back the last piece until
                # the whole object matched the manifest), which every client rejects.
                logger.error("serving %s: %s; the response was cut off", request.path, e)
                if request.transport is not None:
                    request.transport.abort()
                return response
    await response.write_eof()
    return response
