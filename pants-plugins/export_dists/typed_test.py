"""PEP 561 markers: `[export-dists].typed` and `export_dist_typed` put `py.typed` beside a dist's modules."""
from __future__ import annotations

import io
import zipfile

from export_dists.conftest import Repo
from export_dists.export import Export
from export_dists.typed import py_typed_markers
from pants.engine.addresses import Address


def test_markers_go_beside_the_modules_of_each_package() -> None:
    assert py_typed_markers(["textkit/core/__init__.py", "textkit/core/stats.py", "textkit/core/words.txt"]) == (
        "textkit/core/py.typed",
    )
    # A namespace package's directories above the dist's modules stay unmarked (PEP 561); each
    # directory with modules is marked; data files and top-level modules are not.
    assert py_typed_markers(["ns/a/m.py", "ns/a/sub/n.pyi", "ns/data.json", "top.py"]) == (
        "ns/a/py.typed",
        "ns/a/sub/py.typed",
    )
    # A marker the target ships itself is not added twice.
    assert py_typed_markers(["pkg/__init__.py", "pkg/py.typed"]) == ()


def _files(export: Export, name: str) -> set[str]:
    dist = next(d for d in export.dists if d.name == name)
    with zipfile.ZipFile(io.BytesIO(dist.wheel.content)) as archive:
        return {n for n in archive.namelist() if ".dist-info/" not in n}


def test_typed_option_and_field(repo: Repo) -> None:
    repo.commit(
        {
            "src/python/a/BUILD": "python_sources()",
            "src/python/a/m.py": "def f() -> int:\n    return 1\n",
            "src/python/b/BUILD": "python_sources(export_dist_typed=False)",
            "src/python/b/m.py": "",
            "src/python/c/BUILD": "python_sources(export_dist_typed=True)",
            "src/python/c/m.py": "",
        }
    )
    roots = (Address("src/python/a"), Address("src/python/b"), Address("src/python/c"))
    untyped = repo.export(*roots)
    assert _files(untyped, "monorepo.src.python.a") == {"a/m.py"}
    assert _files(untyped, "monorepo.src.python.c") == {"c/m.py", "c/py.typed"}
    typed = repo.export(*roots, typed=True)
    assert _files(typed, "monorepo.src.python.a") == {"a/m.py", "a/py.typed"}
    assert _files(typed, "monorepo.src.python.b") == {"b/m.py"}
    # A marked dist is other bytes: its content version moves with the setting; the others keep theirs.
    versions = {d.name: d for d in untyped.dists}
    for dist in typed.dists:
        before = versions[dist.name]
        assert (dist.wheel.content == before.wheel.content) == (dist.name != "monorepo.src.python.a")
        assert (dist.fingerprint == before.fingerprint) == (dist.name != "monorepo.src.python.a")
