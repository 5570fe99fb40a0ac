"""The relay's packages and which may import which, read from the source with `ast` (docs/relay.md)."""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parent
PACKAGES = ("auth", "building", "index", "storage", "tools", "web")
# The shared ground every package may stand on: the export contract, one error type, git, file locks,
# resource errors, upkeep (problems logged once, loops that outlive their failures).
SHARED = ("relay.contract", "relay.errors", "relay.git", "relay.locks", "relay.resources", "relay.upkeep")
# What each package may import of the relay besides SHARED (and itself). Only the CLI wires everything.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "storage": (),
    "index": ("relay.storage",),
    "building": ("relay.storage",),
    "auth": (),
    # verify installs what an index serves: it reads an export's URL requirements as the index does.
    "tools": ("relay.index",),
    "web": ("relay.auth", "relay.building", "relay.index", "relay.storage"),
}
# Libraries that speak HTTP: auth checks credentials, the web layer reads them from requests.
HTTP_LIBRARIES = ("aiohttp", "aiobotocore", "botocore", "urllib.request", "http")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. relay.web.app
    target: str  # what it imports, e.g. relay.storage.store
    where: str  # path:line


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path = RELAY.parent) -> list[Import]:
    """Every import in one file, at any depth (inside functions and `if TYPE_CHECKING:` too)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, where) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from relay import web` imports the module relay.web, not a name of relay.
            found.extend(Import(module, f"{target}.{alias.name}" if target == "relay" else target, where)
                         for alias in node.names)
    return found


def _product_files() -> list[Path]:
    return sorted(p for p in RELAY.rglob("*.py") if not p.name.endswith("_test.py") and p.name != "conftest.py")


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def _relay_imports() -> list[Import]:
    return [i for p in _product_files() for i in _imports(p) if _within(i.target, "relay") or _within(i.target, "relay_testing")]


def _wrong_directions(imports: list[Import], package: str) -> list[str]:
    allowed = (f"relay.{package}",) + SHARED + MAY_IMPORT[package]
    return [
        f"{i.where}: {i.module} imports {i.target}"
        for i in imports
        if _within(i.module, f"relay.{package}")
        and (_within(i.target, "relay") or _within(i.target, "relay_testing"))
        and not any(_within(i.target, a) for a in allowed)
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_it_stands_on(package: str) -> None:
    wrong = _wrong_directions(_relay_imports(), package)
    assert wrong == [], f"relay.{package} may import only itself, {', '.join(SHARED + MAY_IMPORT[package])}"


def test_the_checker_sees_imports_at_every_depth_and_relative_ones(tmp_path: Path) -> None:
    # A storage module that reaches the web layer inside a function and the index by a relative import.
    bad = tmp_path / "relay" / "storage" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "from relay.contract import Export\n"
        "def f():\n    from relay.web import app\n    from ..index import refs\n    from . import store\n"
    )
    imports = _imports(bad, tmp_path)
    assert [i.target for i in imports] == ["relay.contract", "relay.web", "relay.index", "relay.storage"]
    assert _wrong_directions(imports, "storage") == [
        "relay/storage/bad.py:3: relay.storage.bad imports relay.web",
        "relay/storage/bad.py:4: relay.storage.bad imports relay.index",
    ]


def test_the_shared_modules_import_no_package() -> None:
    wrong = [f"{i.where}: {i.module} imports {i.target}" for i in _relay_imports()
             if i.module in SHARED and not any(_within(i.target, s) for s in SHARED)]
    assert wrong == []


def test_only_the_cli_wires_everything() -> None:
    wrong = [f"{i.where}: {i.module} imports {i.target}" for i in _relay_imports()
             if _within(i.target, "relay.cli") and not (i.module == "relay.__main__" or _within(i.module, "relay.cli"))]
    assert wrong == []


def test_auth_knows_no_http() -> None:
    wrong = [f"{i.where}: {i.module} imports {i.target}"
             for p in _product_files() for i in _imports(p)
             if _within(i.module, "relay.auth") and any(_within(i.target, h) for h in HTTP_LIBRARIES)]
    assert wrong == []


def test_nothing_in_the_product_imports_test_support() -> None:
    wrong = [f"{i.where}: {i.module} imports {i.target}" for i in _relay_imports()
             if _within(i.target, "relay_testing") or i.target.endswith("_test") or i.target == "relay.conftest"]
    assert wrong == []
    assert not (RELAY / "testing.py").exists() and not (RELAY / "seaweedfs.py").exists()


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_has_a_public_face(package: str) -> None:
    module = importlib.import_module(f"relay.{package}")
    assert module.__doc__, f"relay/{package}/__init__.py starts with one docstring line saying what it owns"
    names = getattr(module, "__all__", [])
    assert names, f"relay/{package}/__init__.py lists its public names in __all__"
    assert [n for n in names if not hasattr(module, n)] == []
