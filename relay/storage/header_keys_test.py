"""Header keys: a manifest's header fields in an object's name, bound to the manifest's MD5."""

from __future__ import annotations

import hashlib
import json

from relay.storage.header_keys import etag_md5, header_key, key_of, md5_of, read_header_keys

SHA = "a" * 40


def _manifest(**fields: object) -> bytes:
    header = {"key": SHA, "count": 7, "commit_time": "2026-12-01T10:00:00+00:00", "dirty": False,
              "branches": ["main"], "tags": ["v1"], **fields}
    return json.dumps({**header, "dists": [{"project": "x"}]}, indent=2).encode()


def test_a_header_key_carries_the_fields_that_order_exports_and_names_the_manifests_md5() -> None:
    manifest = _manifest()
    found = header_key(SHA, manifest)
    assert found is not None
    name, body = found
    assert key_of(name) == SHA and md5_of(name) == hashlib.md5(manifest).hexdigest()
    assert json.loads(body) == {"count": 7, "commit_time": "2026-12-01T10:00:00+00:00", "dirty": False,
                                "branches": ["main"], "tags": ["v1"]}
    assert read_header_keys([name]) == {SHA: {md5_of(name): json.loads(body)}}
    assert len(name) <= 255 and "/" not in name


def test_a_dirty_export_key_holds_a_dot() -> None:
    key = SHA + ".dirty"
    found = header_key(key, _manifest(key=key, dirty=True))
    assert found is not None
    assert key_of(found[0]) == key
    assert read_header_keys([found[0]])[key][md5_of(found[0])]["dirty"] is True


def test_no_key_for_a_header_that_cannot_be_read_or_does_not_fit() -> None:
    # `dists` first: the fields after it cannot be told from the first bytes.
    assert header_key(SHA, json.dumps({"dists": [], "count": 1}).encode()) is None
    assert header_key(SHA, b"not json") is None
    # A commit on many branches: too long for one file name of a store that keeps keys as paths.
    assert header_key(SHA, _manifest(branches=[f"feature/branch-{n}" for n in range(20)])) is None


def test_names_that_are_not_header_keys_stand_for_nothing() -> None:
    good = header_key(SHA, _manifest())
    assert good is not None
    names = [good[0], f"{SHA}.{'0' * 31}.e30", f"{SHA}.{'0' * 32}.!!!", f"{SHA}.{'0' * 32}.e30",
             "no-dots", f"{SHA}/x.{'0' * 32}.e30"]
    # Only the first is one: a short MD5, a token that is not base64url JSON, JSON without the fields
    # (`{}`), no parts, a slash.
    assert list(read_header_keys(names)) == [SHA]


def test_an_etag_is_compared_without_its_quotes() -> None:
    assert etag_md5('"0CC175B9C0F1B6A831C399E269772661"') == "0cc175b9c0f1b6a831c399e269772661"
