"""Building a wheel's bytes from files and core metadata: plain Python, no setuptools."""
from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import time
import zipfile
from dataclasses import dataclass
from functools import cached_property
from io import BytesIO, StringIO
from typing import Collection, Mapping, Sequence

METADATA_VERSION = "2.4"
WHEEL_TAG = "py3-none-any"
GENERATOR = "export-dists (Pants plugin)"
# Zip timestamps cannot predate 1980; reproducible wheels use the commit time, clamped to this.
_ZIP_EPOCH = 315532800


def escape_name(name: str) -> str:
    """The distribution name as it appears in wheel and .dist-info file names (PEP 427/491)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_filename(name: str, version: str) -> str:
    return f"{escape_name(name)}-{version.replace('-', '_')}-{WHEEL_TAG}.whl"


@dataclass(frozen=True)
class CoreMetadata:
    """The fields of a dist's METADATA file that export-dists writes."""

    name: str
    version: str
    summary: str
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    description: str = ""
    keywords: tuple[str, ...] = ()

    def render(self) -> bytes:
        lines = [
            f"Metadata-Version: {METADATA_VERSION}",
            f"Name: {self.name}",
            f"Version: {self.version}",
            f"Summary: {self.summary}",
        ]
        if self.keywords:
            lines.append(f"Keywords: {','.join(self.keywords)}")
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines.extend(f"Requires-Dist: {req}" for req in self.requires_dist)
        if self.description:
            lines.append("Description-Content-Type: text/markdown")
            return ("\n".join(lines) + "\n\n" + self.description.rstrip("\n") + "\n").encode()
        return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class Wheel:
    filename: str
    content: bytes
    metadata: bytes

    # Hashed once per wheel (the manifest, the index pages and the links all ask): a cached
    # property writes the instance's __dict__, which a frozen dataclass allows.
    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @cached_property
    def metadata_sha256(self) -> str:
        return hashlib.sha256(self.metadata).hexdigest()


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(
    metadata: CoreMetadata,
    files: Mapping[str, bytes],
    *,
    timestamp: int,
    extra_dist_info: Mapping[str, bytes] | None = None,
) -> Wheel:
    """Build a pure-Python wheel holding exactly `files` (paths as Python imports them).

    The result is byte-for-byte reproducible: entries are sorted, every timestamp is `timestamp`
    and permissions are fixed.
    """
    dist_info = f"{escape_name(metadata.name)}-{metadata.version}.dist-info"
    metadata_bytes = metadata.render()
    wheel_file = (
        f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n"
    ).encode()
    for path in files:
        if path.startswith("/") or ".." in path.split("/") or path.split("/")[0].endswith(".dist-info"):
            raise ValueError(f"refusing to put {path!r} into wheel {metadata.name}")
    entries: list[tuple[str, bytes]] = sorted(files.items())
    entries.extend(
        sorted(
            [(f"{dist_info}/METADATA", metadata_bytes), (f"{dist_info}/WHEEL", wheel_file)]
            + [(f"{dist_info}/{name}", data) for name, data in (extra_dist_info or {}).items()]
        )
    )
    content = pack_wheel(entries, record_path=f"{dist_info}/RECORD", timestamp=timestamp)
    return Wheel(
        filename=wheel_filename(metadata.name, metadata.version),
        content=content,
        metadata=metadata_bytes,
    )


def pack_wheel(
    entries: Sequence[tuple[str, bytes]],
    *,
    record_path: str,
    timestamp: int,
    executable: Collection[str] = (),
) -> bytes:
    """The zip of a wheel: `entries` in the order given, then a RECORD written for them.

    Byte-for-byte reproducible: every timestamp is `timestamp` (clamped to 1980), permissions are
    0644 (0755 for paths in `executable`), and nothing of the machine gets in.
    """
    # RECORD is CSV: a path with a comma or a quote must be quoted, as pip, uv and pex parse it.
    record = StringIO()
    writer = csv.writer(record, lineterminator="\n")
    writer.writerows((path, _record_hash(data), len(data)) for path, data in entries)
    writer.writerow((record_path, "", ""))
    every = [*entries, (record_path, record.getvalue().encode())]

    date_time = time.gmtime(max(timestamp, _ZIP_EPOCH))[:6]
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in every:
            info = zipfile.ZipInfo(path, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if path in executable else 0o644) << 16
            info.create_system = 3
            archive.writestr(info, data)
    return buffer.getvalue()


def provenance_json(
    *,
    sha: str,
    address: str,
    namespace: str,
    version: str,
    dirty: bool,
    fingerprint: str | None = None,
    environment: bool = False,
) -> bytes:
    """The .dist-info/export_dists.json file: where an installed dist came from.

    `sha` is the commit the version names (with version_scheme = "content", the dist's origin);
    `fingerprint` is the content fingerprint the manifest records.
    """
    document: dict[str, object] = {
        "address": address,
        "dirty": dirty,
        "namespace": namespace,
        "sha": sha,
        "version": version,
    }
    if fingerprint is not None:
        document["fingerprint"] = fingerprint
    if environment:  # only then: every other wheel stays byte for byte what it was
        document["environment"] = True
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
