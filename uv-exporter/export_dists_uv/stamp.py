"""A wheel as its own backend built it -> the exported wheel: the content version, `==` pins on
workspace members, the provenance record, a new RECORD, byte-reproducible.

Everything else stays as the backend wrote it: files, entry points, the WHEEL file, and every
METADATA field but `Version` and the `Requires-Dist` lines that name workspace members.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Mapping

from export_dists_core.compat import InvalidRequirement, Requirement, SpecifierSet, canonicalize_name
from export_dists_core.wheel import Wheel, escape_name, pack_wheel

PROVENANCE = "export_dists.json"
# Signatures of the RECORD the backend wrote: they cannot hold for the new one.
_DROPPED = ("RECORD", "RECORD.jws", "RECORD.p7s")


class StampError(Exception):
    pass


@dataclass(frozen=True)
class StampedWheel:
    wheel: Wheel
    requires_dist: tuple[str, ...]
    requires_python: str | None
    files: tuple[str, ...]  # the paths it installs (its .dist-info aside)


def _tags(filename: str) -> str:
    """`name-1.0-py3-none-any.whl` -> `py3-none-any` (a build tag, if any, is left out)."""
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):
        raise StampError(f"{filename!r} is not a wheel file name")
    return "-".join(parts[-3:])


def _pinned(value: str, pins: Mapping[str, str]) -> str:
    try:
        requirement = Requirement(value)
    except InvalidRequirement:
        return value  # the backend's own line, as written
    version = pins.get(canonicalize_name(requirement.name))
    if version is None:
        return value
    requirement.url = None
    requirement.specifier = SpecifierSet(f"=={version}")
    return str(requirement)


def restamp_metadata(metadata: bytes, version: str, pins: Mapping[str, str]) -> tuple[bytes, tuple[str, ...], str | None]:
    """METADATA with `Version` replaced and workspace pins rewritten; and its Requires-Dist and Requires-Python.

    Only header lines are touched, one by one, so every other byte (the description, continuation
    lines, the order of fields) stays exactly as the backend wrote it.
    """
    text = metadata.decode("utf-8")
    header, separator, body = text.partition("\n\n")
    lines = header.split("\n")
    requires_dist: list[str] = []
    requires_python = None
    for i, line in enumerate(lines):
        field, colon, value = line.partition(":")
        if not colon or line[:1] in (" ", "\t"):
            continue
        key = field.strip().lower()
        value = value.strip()
        if key == "version":
            lines[i] = f"{field}: {version}"
        elif key == "requires-dist":
            value = _pinned(value, pins)
            lines[i] = f"{field}: {value}"
            requires_dist.append(value)
        elif key == "requires-python":
            requires_python = value or None
    return ("\n".join(lines) + separator + body).encode("utf-8"), tuple(requires_dist), requires_python


def stamp_wheel(
    raw: bytes,
    raw_filename: str,
    *,
    name: str,
    version: str,
    pins: Mapping[str, str],
    provenance: bytes,
    timestamp: int,
) -> StampedWheel:
    tags = _tags(raw_filename)
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        contents = {i.filename: archive.read(i) for i in infos}
        executable = {i.filename for i in infos if (i.external_attr >> 16) & 0o111}
    dist_infos = {p.split("/")[0] for p in contents if p.split("/")[0].endswith(".dist-info")}
    if len(dist_infos) != 1:
        raise StampError(f"{raw_filename} has {len(dist_infos)} .dist-info directories, not one")
    old_dist_info = dist_infos.pop()
    old_data = old_dist_info[: -len(".dist-info")] + ".data"
    stem = f"{escape_name(name)}-{version}"
    metadata, requires_dist, requires_python = restamp_metadata(contents[f"{old_dist_info}/METADATA"], version, pins)

    files: list[tuple[str, bytes]] = []
    dist_info: list[tuple[str, bytes]] = [(f"{stem}.dist-info/{PROVENANCE}", provenance)]
    renamed_executable = set()
    for path, data in contents.items():
        top, _, rest = path.partition("/")
        if top == old_dist_info:
            if rest in _DROPPED or rest == PROVENANCE:
                continue
            dist_info.append((f"{stem}.dist-info/{rest}", metadata if rest == "METADATA" else data))
            new = f"{stem}.dist-info/{rest}"
        elif top == old_data:
            new = f"{stem}.data/{rest}"
            files.append((new, data))
        else:
            new = path
            files.append((new, data))
        if path in executable:
            renamed_executable.add(new)
    # The .dist-info last, RECORD at its end (pack_wheel adds it): as the wheel spec recommends.
    entries = sorted(files) + sorted(dist_info)
    content = pack_wheel(
        entries, record_path=f"{stem}.dist-info/RECORD", timestamp=timestamp, executable=renamed_executable
    )
    wheel = Wheel(filename=f"{stem}-{tags}.whl", content=content, metadata=metadata)
    return StampedWheel(wheel, requires_dist, requires_python, tuple(p for p, _ in sorted(files)))
