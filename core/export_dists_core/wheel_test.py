"""Tests for building wheel bytes: reproducible, a correct RECORD, strict metadata."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile
from email.parser import BytesParser

import pytest

from export_dists_core.compat import Requirement, Version
from export_dists_core.wheel import (
    Wheel,
    METADATA_VERSION,
    CoreMetadata,
    build_wheel,
    escape_name,
    provenance_json,
    wheel_filename,
)

VERSION = "0.7+g0123456789ab"
COMMIT_EPOCH = 1764072000  # 2025-11-25T12:00:00Z

METADATA = CoreMetadata(
    name="monorepo.src.python.a.b",
    version=VERSION,
    summary="Pants target src/python/a/b:b at commit 0123456789ab",
    requires_dist=(
        f"monorepo.src.python.c=={VERSION}",
        'requests[socks]>=2; python_version < "3.12"',
        "attrs",
    ),
    requires_python="<3.12,>=3.9",
    keywords=("export-dists", "sha=0123456789ab"),
    description="Exported by export-dists.\n",
)

FILES = {
    "a/b/__init__.py": b"",
    "a/b/mod.py": b"import requests\n",
    "a/b/data/table.csv": b"x,y\n1,2\n",
}



def read_wheel_files(content: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return archive.namelist()


def _build(timestamp: int = COMMIT_EPOCH, files: dict[str, bytes] = FILES, **kwargs):
    return build_wheel(
        METADATA,
        files,
        timestamp=timestamp,
        extra_dist_info={"export_dists.json": b'{"sha": "0123456789ab"}\n'},
        **kwargs,
    )


def _zip(content: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(content))


DIST_INFO = "monorepo_src_python_a_b-0.7+g0123456789ab.dist-info"


def test_filename_and_escaping() -> None:
    assert escape_name("monorepo.src.python.a-b__c") == "monorepo_src_python_a_b_c"
    assert wheel_filename("monorepo.src.python.a.b", VERSION) == (
        "monorepo_src_python_a_b-0.7+g0123456789ab-py3-none-any.whl"
    )
    assert _build().filename == "monorepo_src_python_a_b-0.7+g0123456789ab-py3-none-any.whl"


def test_build_twice_is_byte_identical() -> None:
    first, second = _build(), _build()
    assert first.content == second.content
    assert first.sha256 == second.sha256 == hashlib.sha256(first.content).hexdigest()
    # Insertion order of the files does not matter either.
    reordered = _build(files=dict(reversed(list(FILES.items()))))
    assert reordered.content == first.content


def test_different_commit_time_changes_only_timestamps() -> None:
    assert _build(COMMIT_EPOCH).content != _build(COMMIT_EPOCH + 3600).content


def test_entries_sorted_with_dist_info_last_and_record_at_the_end() -> None:
    names = list(read_wheel_files(_build().content))
    assert names == [
        "a/b/__init__.py",
        "a/b/data/table.csv",
        "a/b/mod.py",
        f"{DIST_INFO}/METADATA",
        f"{DIST_INFO}/WHEEL",
        f"{DIST_INFO}/export_dists.json",
        f"{DIST_INFO}/RECORD",
    ]


def test_record_lists_every_file_with_hash_and_size() -> None:
    with _zip(_build().content) as archive:
        record_text = archive.read(f"{DIST_INFO}/RECORD").decode()
        rows = list(csv.reader(io.StringIO(record_text)))
        assert sorted(row[0] for row in rows) == sorted(archive.namelist())
        for path, digest, size in rows:
            if path == f"{DIST_INFO}/RECORD":
                assert (digest, size) == ("", "")
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={expected}"
            assert "=" not in expected and "+" not in expected and "/" not in expected
            assert int(size) == len(data)
    assert record_text.endswith(f"{DIST_INFO}/RECORD,,\n")


def test_record_quotes_paths_with_commas_and_quotes() -> None:
    files = {"a/b/data/x,y.csv": b"1", 'a/b/data/say "hi".txt': b"2"}
    with _zip(_build(files=files).content) as archive:
        record_text = archive.read(f"{DIST_INFO}/RECORD").decode()
    rows = list(csv.reader(io.StringIO(record_text)))
    assert all(len(row) == 3 for row in rows), rows
    assert {row[0] for row in rows} >= set(files)
    assert '"a/b/data/x,y.csv",sha256=' in record_text


def test_wheel_file_has_the_pure_python_tag() -> None:
    with _zip(_build().content) as archive:
        wheel = BytesParser().parsebytes(archive.read(f"{DIST_INFO}/WHEEL"))
    assert wheel["Wheel-Version"] == "1.0"
    assert wheel["Root-Is-Purelib"] == "true"
    assert wheel.get_all("Tag") == ["py3-none-any"]


def test_metadata_fields() -> None:
    built = _build()
    with _zip(built.content) as archive:
        raw = archive.read(f"{DIST_INFO}/METADATA")
    # The .metadata file served beside the wheel (PEP 658) is the METADATA inside it.
    assert raw == built.metadata == METADATA.render()
    assert built.metadata_sha256 == hashlib.sha256(raw).hexdigest()
    message = BytesParser().parsebytes(raw)
    assert message["Metadata-Version"] == METADATA_VERSION
    assert message["Name"] == "monorepo.src.python.a.b"
    assert message["Version"] == VERSION
    assert str(Version(message["Version"])) == VERSION
    assert message["Requires-Python"] == "<3.12,>=3.9"
    assert message["Keywords"] == "export-dists,sha=0123456789ab"
    assert message["Description-Content-Type"] == "text/markdown"
    # Requires-Dist in the order given (the requirements module decides the order), all parseable.
    assert message.get_all("Requires-Dist") == list(METADATA.requires_dist)
    for line in message.get_all("Requires-Dist"):
        Requirement(line)
    assert message.get_payload() == "Exported by export-dists.\n"


def test_metadata_without_optional_fields() -> None:
    bare = CoreMetadata(name="monorepo", version="0.1+gabc", summary="s").render().decode()
    assert bare == "Metadata-Version: 2.4\nName: monorepo\nVersion: 0.1+gabc\nSummary: s\n"


def test_metadata_passes_packagings_strict_parse() -> None:
    # packaging.metadata (>= 22) is not in Pants 2.17's venv (packaging 21.3); where it is, it
    # must accept what we write.
    metadata = pytest.importorskip("packaging.metadata")
    parsed = metadata.Metadata.from_email(METADATA.render(), validate=True)
    assert str(parsed.version) == VERSION
    assert [str(r) for r in parsed.requires_dist] == list(METADATA.requires_dist)


@pytest.mark.parametrize(
    "path",
    ["../evil.py", "a/../../evil.py", "/etc/passwd", "x.dist-info/METADATA"],
)
def test_refuses_paths_outside_the_wheel(path: str) -> None:
    with pytest.raises(ValueError, match="refusing"):
        _build(files={**FILES, path: b""})


def test_timestamps_are_the_commit_time_clamped_to_1980() -> None:
    with _zip(_build(COMMIT_EPOCH).content) as archive:
        assert {info.date_time for info in archive.infolist()} == {(2025, 11, 25, 12, 0, 0)}
    with _zip(_build(0).content) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert _build(0).content == _build(100).content  # both clamp to the same instant


def test_permissions_fixed_and_files_intact() -> None:
    with _zip(_build().content) as archive:
        for info in archive.infolist():
            assert info.external_attr >> 16 == 0o644
            assert info.compress_type == zipfile.ZIP_DEFLATED
        for path, data in FILES.items():
            assert archive.read(path) == data


def test_provenance_json() -> None:
    document = json.loads(
        provenance_json(sha="0" * 40, address="src/python/a/b:b", namespace="monorepo", version=VERSION, dirty=False)
    )
    assert document == {
        "address": "src/python/a/b:b",
        "dirty": False,
        "namespace": "monorepo",
        "sha": "0" * 40,
        "version": VERSION,
    }


def test_sha256_is_computed_once_per_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = Wheel("a-1-py3-none-any.whl", b"wheel bytes", b"metadata bytes")
    calls: list[bytes] = []
    real = hashlib.sha256

    def counting(data: bytes = b"") -> "hashlib._Hash":
        calls.append(data)
        return real(data)

    monkeypatch.setattr("export_dists_core.wheel.hashlib.sha256", counting)
    assert wheel.sha256 == real(b"wheel bytes").hexdigest()
    assert wheel.sha256 == wheel.sha256
    assert wheel.metadata_sha256 == real(b"metadata bytes").hexdigest() == wheel.metadata_sha256
    assert calls == [b"wheel bytes", b"metadata bytes"]
    # The cached digests are not part of the value: equal wheels stay equal, and hash alike.
    assert wheel == Wheel("a-1-py3-none-any.whl", b"wheel bytes", b"metadata bytes")
    assert hash(wheel) == hash(Wheel("a-1-py3-none-any.whl", b"wheel bytes", b"metadata bytes"))
