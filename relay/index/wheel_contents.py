"""What a wheel ships, read from its zip directory: modules, data files, whether it is an environment dist.

The manifest says what a dist requires; only the wheel says which modules it provides (so a search
for `textkit.core.stats` can lead to the dist shipping `textkit/core/stats.py`). A wheel named by its
sha256 never changes, so what is read from it is kept by that digest; reading happens off the event
loop, for the pages for people only, never for the simple API.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Sequence

from cachetools import LRUCache

from relay.contract import Dist, Export
from relay.storage.store import NotListed, Store, StoreUnavailable

logger = logging.getLogger("relay.pages")

# Wheels whose contents are kept (a few hundred bytes to a few kB each).
CACHED_WHEELS = 8192
# A store without local files sends the wheel whole; larger wheels are not read for a page.
MAX_STREAMED_BYTES = 64 * 1024 * 1024
# The one member read from a wheel besides its directory, `.dist-info/export_dists.json`.
MAX_INFO_BYTES = 64 * 1024


@dataclass(frozen=True)
class Module:
    name: str  # dotted, as one imports it: textkit.core.stats
    path: str  # the file in the wheel: textkit/core/stats.py

    @property
    def importable(self) -> bool:
        """Whether `import <name>` can work: every part a Python identifier (`v3.5` is not)."""
        return all(part.isidentifier() for part in self.name.split("."))


@dataclass(frozen=True)
class WheelContents:
    """What one wheel installs, besides its metadata."""

    modules: tuple[Module, ...]
    data_files: tuple[str, ...]  # everything else outside .dist-info (resources)
    environment: bool  # an export_dists_environment dist (its export_dists.json says so)

    @property
    def search_text(self) -> str:
        """The module names and file paths, lowercase, for search."""
        return " ".join(m.name.lower() + " " + m.path.lower() for m in self.modules)


UNKNOWN = WheelContents(modules=(), data_files=(), environment=False)


def module_of(path: str) -> Module | None:
    """The module a wheel path installs (`a/b/__init__.py` -> `a.b`), or None for a data file."""
    directory, _, filename = path.rpartition("/")
    if filename.endswith((".py", ".pyi")):
        stem = filename.rsplit(".", 1)[0]
    elif filename.endswith((".so", ".pyd")):
        stem = filename.split(".", 1)[0]  # stats.cpython-311-x86_64-linux-gnu.so is `stats`
    else:
        return None
    parts = (directory.split("/") if directory else []) + ([] if stem == "__init__" else [stem])
    if not parts or not all(parts):
        return None
    return Module(name=".".join(parts), path=path)


def read_contents(wheel: BinaryIO) -> WheelContents:
    """Read a wheel's zip directory (and its export_dists.json); raises zipfile.BadZipFile, OSError."""
    with zipfile.ZipFile(wheel) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        environment = False
        modules: dict[str, Module] = {}
        data: list[str] = []
        for name in names:
            top = name.split("/", 1)[0]
            if top.endswith(".dist-info"):
                if name == f"{top}/export_dists.json":
                    environment = _is_environment(archive, name)
                continue
            if top.endswith(".data"):
                # <name>.data/purelib/a/b.py installs as a/b.py; scripts and headers are not modules.
                parts = name.split("/", 2)
                if len(parts) == 3 and parts[1] in ("purelib", "platlib"):
                    name = parts[2]
                else:
                    data.append(name)
                    continue
            module = module_of(name)
            if module is None:
                data.append(name)
            elif module.name not in modules or name.endswith(".py"):
                modules[module.name] = module
    ordered = tuple(sorted(modules.values(), key=lambda m: m.name))
    return WheelContents(modules=ordered, data_files=tuple(sorted(data)), environment=environment)


def _is_environment(archive: zipfile.ZipFile, name: str) -> bool:
    info = archive.getinfo(name)
    if info.file_size > MAX_INFO_BYTES:
        return False
    try:
        data = json.loads(archive.read(name))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("environment") is True


class Contents:
    """Wheel contents by wheel sha256, read from the store on first use (bounded, least recently used out)."""

    def __init__(self, store: Store, size: int = CACHED_WHEELS) -> None:
        self.store = store
        self._known: LRUCache[str, WheelContents] = LRUCache(maxsize=size)
        self._reading: dict[str, asyncio.Future[WheelContents]] = {}
        self.reads = 0  # wheels read, for tests and the bench

    def known(self, dist: Dist) -> WheelContents | None:
        return self._known.get(dist.sha256)

    async def of(self, export: Export, dist: Dist) -> WheelContents:
        """One dist's contents; UNKNOWN (logged) where the wheel cannot be read now."""
        found = self._known.get(dist.sha256)
        if found is not None:
            return found
        task = self._reading.get(dist.sha256)
        if task is None:
            task = asyncio.ensure_future(self._read(export, dist))
            self._reading[dist.sha256] = task
            task.add_done_callback(lambda _: self._reading.pop(dist.sha256, None))
        return await asyncio.shield(task)

    async def of_all(self, export: Export, dists: Iterable[Dist]) -> dict[str, WheelContents]:
        """Contents by project for many dists, at most 8 wheels read at once."""
        wanted: Sequence[Dist] = list(dists)
        result = {d.project: c for d in wanted if (c := self._known.get(d.sha256)) is not None}
        missing = [d for d in wanted if d.project not in result]
        slots = asyncio.Semaphore(8)

        async def one(dist: Dist) -> None:
            async with slots:
                result[dist.project] = await self.of(export, dist)

        await asyncio.gather(*(one(d) for d in missing))
        return result

    async def _read(self, export: Export, dist: Dist) -> WheelContents:
        where = f"{export.key}/{dist.filename}"
        loop = asyncio.get_running_loop()
        try:
            async with self.store.open(export.key, dist.filename) as blob:
                if blob.file is not None:
                    contents = await loop.run_in_executor(None, _read_at_start, blob.file)
                elif blob.size > MAX_STREAMED_BYTES:
                    logger.info("%s: %d bytes, its modules are not read for the pages", where, blob.size)
                    return UNKNOWN
                else:
                    body = b"".join([chunk async for chunk in blob.chunks])
                    contents = await loop.run_in_executor(None, read_contents, io.BytesIO(body))
        except (NotListed, StoreUnavailable, OSError, zipfile.BadZipFile, ValueError) as e:
            # A page must not fail because one wheel cannot be read now; it is read again next time.
            logger.warning("reading the contents of %s: %s", where, e)
            return UNKNOWN
        self.reads += 1
        self._known[dist.sha256] = contents
        return contents


def _read_at_start(file: BinaryIO) -> WheelContents:
    file.seek(0)
    return read_contents(file)
