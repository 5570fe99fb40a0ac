"""A manifest's header in the name of a small object, so that one listing tells every export's place.

A replica that starts over a bucket no replica shared a catalog of must know which export is each
branch's tip before its first page: the header of every manifest (`contract.HEADER_ORDER_FIELDS`),
one GET each (1,500 for a month of a followed main). `relay publish` therefore writes, just before a
manifest, an object under `headers/` whose key carries those fields (its body is the same JSON, for
people; no replica reads it):

    headers/<key>.<md5 of the manifest's bytes>.<the fields as compact JSON, base64url>

and a listing of `headers/` (one LIST request per 1,000) stands for those GETs. The key is a hint,
never the truth: it counts only while the manifest's listed ETag is the MD5 it names (a manifest
written in one PUT, unencrypted or SSE-S3: what `relay publish` writes), so it describes exactly the
bytes listed; any other manifest (no such key, another ETag, a store whose ETags are not MD5s, a
writer that wrote none) has its header read as before. A key whose manifest is gone is removed by the
evictor. The name after `headers/` is one path segment of at most 255 bytes (stores that keep keys
as file paths make a directory per `/`, and cap a file name there); a header too long for it (a commit
on many branches) gets no key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Mapping

from relay.contract import HEADER_BYTES, HEADER_ORDER_FIELDS, parse_header

HEADERS = "headers/"
# The longest file name of stores that keep keys as file paths.
_MAX_NAME = 255


def header_key(key: str, manifest: bytes) -> tuple[str, bytes] | None:
    """The name under `headers/` that carries the header of `manifest`, the manifest of export `key`,
    and the object's body; None when the header cannot be read from its first bytes, or does not fit."""
    header = parse_header(manifest[:HEADER_BYTES])
    if header is None:
        return None
    fields = json.dumps({name: header[name] for name in HEADER_ORDER_FIELDS}, separators=(",", ":")).encode("utf-8")
    name = f"{key}.{hashlib.md5(manifest).hexdigest()}.{base64.urlsafe_b64encode(fields).rstrip(b'=').decode('ascii')}"
    return (name, fields) if len(name) <= _MAX_NAME and "/" not in key else None


def key_of(name: str) -> str:
    """The export a name under `headers/` is of."""
    return name.rsplit(".", 2)[0]


def md5_of(name: str) -> str:
    """The MD5 of the manifest a name under `headers/` describes."""
    return name.rsplit(".", 2)[1]


def read_header_keys(names: list[str]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """The headers the names under `headers/` carry: key -> MD5 of its manifest -> fields. A name that
    is not one is skipped (it stands for nothing; the manifest's header is read instead)."""
    found: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name in names:
        parts = name.rsplit(".", 2)  # a key may hold a dot (`<sha>.dirty`); the MD5 and base64url do not
        if len(parts) != 3 or len(parts[1]) != 32 or "/" in name:
            continue
        key, md5, token = parts
        try:
            fields = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (ValueError, binascii.Error):
            continue
        if isinstance(fields, dict) and all(name in fields for name in HEADER_ORDER_FIELDS):
            found.setdefault(key, {})[md5] = fields
    return found


def etag_md5(etag: str) -> str:
    """The MD5 an ETag as listed says, if it is one (quotes dropped); a multipart or encrypted
    object's ETag is not, and matches no header key."""
    return etag.strip('"').lower()
