"""Record, per Pants release, what each Pants name the plugin uses is there (for check.py, offline).

    python build-support/pants_api/snapshot.py --pants-git DIR            # every tag in tags.txt
    python build-support/pants_api/snapshot.py --pants-git DIR --add release_2.34.0   # a new release

reads a clone of pantsbuild/pants (any git directory with the release tags: `git show TAG:path`),
and writes build-support/pants_api/snapshots/<tag>.json: the tag's commit, Pants version, the
Python its `pantsbuild.pants` requires, the `packaging` it pins, and for every `module:name` the
plugin uses (uses.py) what it is at that tag: found or missing, its kind (class, function, rule,
assignment, module), where it is defined (following re-exports, and `native_engine.pyi` for
classes implemented in Rust), and its parameters (a function's, a class's `__init__`/`__new__`, or
a dataclass's fields). `--add` also appends the tag to tags.txt. Needs git and Python 3.11+ (to
parse newer Pants sources; a file that still does not parse is read with the stub of last resort,
and its names are recorded as "unknown", never as missing).

The snapshots are committed: CI checks the plugin against them with no network and no clone
(tests/pants_api_test.py). Regenerate them whenever the plugin starts using a new Pants name.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from uses import collect_uses  # noqa: E402

PLUGIN = ROOT / "pants-plugins" / "export_dists"
SNAPSHOTS = HERE / "snapshots"
TAGS = HERE / "tags.txt"
NATIVE = "pants.engine.internals.native_engine"
SCHEMA = 1


class SnapshotError(Exception):
    pass


@dataclass
class Source:
    path: str
    text: str
    tree: ast.Module | None  # None: did not parse


class Tree:
    """One tag of the Pants clone, read with `git show` and parsed once per file."""

    def __init__(self, git_dir: str, tag: str) -> None:
        self.git_dir = git_dir
        self.tag = tag
        self._files: dict[str, Source | None] = {}

    def show(self, path: str) -> str | None:
        result = subprocess.run(["git", "-C", self.git_dir, "show", f"{self.tag}:{path}"], capture_output=True)
        return result.stdout.decode("utf-8") if result.returncode == 0 else None

    def module(self, module: str) -> Source | None:
        if module in self._files:
            return self._files[module]
        base = "src/python/" + module.replace(".", "/")
        found = None
        for path in (base + ".py", base + "/__init__.py", base + ".pyi"):
            text = self.show(path)
            if text is not None:
                try:
                    tree: ast.Module | None = ast.parse(text)
                except SyntaxError:
                    tree = None
                found = Source(path, text, tree)
                break
        self._files[module] = found
        return found


def _params(args: ast.arguments, drop_first: bool) -> list[list[Any]]:
    positional = [*args.posonlyargs, *args.args]
    defaults_from = len(positional) - len(args.defaults)
    params: list[list[Any]] = []
    for index, arg in enumerate(positional):
        params.append([arg.arg, "positional", index >= defaults_from])
    if args.vararg:
        params.append([args.vararg.arg, "var-positional", True])
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append([arg.arg, "keyword", default is not None])
    if args.kwarg:
        params.append([args.kwarg.arg, "var-keyword", True])
    return params[1:] if drop_first and params and params[0][1] == "positional" else params


def _is_rule(node: ast.AST) -> bool:
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if "rule" in name:
            return True
    return False


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")) == "dataclass":
            return True
    return False


def _top(tree: ast.Module, name: str) -> ast.AST | None:
    """The statement defining `name` at module level (inside if/try too), the last one wins."""
    found = None
    for statement in tree.body:
        nodes = [statement] if not isinstance(statement, (ast.If, ast.Try)) else list(ast.walk(statement))
        for node in nodes:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                found = node
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                found = node
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                found = node
            elif isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
                found = node
    return found


def _member(node: ast.ClassDef, name: str) -> ast.AST | None:
    for child in node.body:
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and child.name == name:
            return child
        if isinstance(child, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in child.targets):
            return child
        if isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name) and child.target.id == name:
            return child
    return None


class Resolver:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def name(self, module: str, name: str, depth: int = 0) -> tuple[str, Source, ast.AST] | str:
        """(module, source, node) defining `module.name`, or a status: no-module, missing, unknown."""
        source = self.tree.module(module)
        if source is None:
            return "no-module"
        if source.tree is None:
            return "unknown" if re.search(rf"\b{re.escape(name)}\b", source.text) else "missing"
        node = _top(source.tree, name)
        if node is None:
            submodule = self.tree.module(f"{module}.{name}")
            return (f"{module}.{name}", submodule, ast.Module(body=[], type_ignores=[])) if submodule else "missing"
        if isinstance(node, ast.ImportFrom) and depth < 10:
            origin = node.module or ""
            if node.level:
                parts = module.split(".")
                is_package = source.path.endswith("__init__.py")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                origin = ".".join([*base, *([node.module] if node.module else [])])
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            if origin.split(".")[0] != "pants":
                return (origin, source, node)  # a third-party name (e.g. typing): recorded as found
            return self.name(origin, original, depth + 1)
        return module, source, node

    def describe(self, module: str, qualname: str) -> dict[str, Any]:
        if not qualname:
            source = self.tree.module(module)
            return {"status": "found", "kind": "module", "where": source.path} if source else {"status": "no-module"}
        head, *rest = qualname.split(".")
        instance = head.endswith("()")
        head = head.rstrip("()")
        found = self.name(module, head)
        if isinstance(found, str):
            return {"status": found}
        where_module, source, node = found
        trail = [head + ("()" if instance else "")]
        for part in rest:
            if not isinstance(node, ast.ClassDef):
                return {**self._entry(where_module, source, node), "unchecked": ".".join(rest[len(trail) - 1 :])}
            member = self._class_member(where_module, source, node, part.rstrip("()"))
            if isinstance(member, str):
                return {"status": member, "at": ".".join(trail)}
            where_module, source, node = member
            trail.append(part)
        return self._entry(where_module, source, node)

    def _class_member(self, module: str, source: Source, node: ast.ClassDef, name: str, depth: int = 0) -> tuple[str, Source, ast.AST] | str:
        member = _member(node, name)
        if member is not None:
            return module, source, member
        unknown = False
        for base in node.bases:
            base_expr = base.value if isinstance(base, ast.Subscript) else base
            base_name = base_expr.attr if isinstance(base_expr, ast.Attribute) else getattr(base_expr, "id", None)
            if base_name is None or depth > 15:
                unknown = True
                continue
            assert source.tree is not None
            resolved = self.name(module, base_name) if _top(source.tree, base_name) is not None else "missing"
            if isinstance(resolved, str) or not isinstance(resolved[2], ast.ClassDef):
                # typing/abc/stdlib bases, or ones defined elsewhere: cannot say what they hold.
                if base_name not in ("object", "Generic", "Protocol"):
                    unknown = True
                continue
            found = self._class_member(resolved[0], resolved[1], resolved[2], name, depth + 1)
            if not isinstance(found, str):
                return found
            unknown = unknown or found == "unknown"
        return "unknown" if unknown else "missing"

    def _dataclass_fields(self, module: str, source: Source, node: ast.ClassDef, depth: int = 0) -> list[list[Any]]:
        fields: list[list[Any]] = []
        for base in node.bases:
            base_name = getattr(base, "id", None)
            if base_name and source.tree is not None and _top(source.tree, base_name) is not None and depth < 10:
                resolved = self.name(module, base_name)
                if not isinstance(resolved, str) and isinstance(resolved[2], ast.ClassDef) and _is_dataclass(resolved[2]):
                    fields.extend(self._dataclass_fields(resolved[0], resolved[1], resolved[2], depth + 1))
        for child in node.body:
            if isinstance(child, ast.AnnAssign) and isinstance(child.target, ast.Name):
                annotation = ast.get_source_segment(source.text, child.annotation) or ""
                if "ClassVar" in annotation:
                    continue
                fields = [f for f in fields if f[0] != child.target.id]
                fields.append([child.target.id, "positional", child.value is not None])
        return fields

    def _entry(self, module: str, source: Source, node: ast.AST) -> dict[str, Any]:
        line = getattr(node, "lineno", None)
        entry: dict[str, Any] = {"status": "found", "where": f"{source.path}:{line}" if line else source.path}
        if isinstance(node, ast.Module):
            entry["kind"] = "module"
        elif isinstance(node, ast.ClassDef):
            entry["kind"] = "class"
            init = _member(node, "__init__") or _member(node, "__new__")
            overloaded = sum(
                isinstance(c, ast.FunctionDef) and c.name in ("__init__", "__new__") for c in node.body
            ) > 1
            if overloaded:
                pass  # several signatures (typing.overload): not recorded, so calls are not checked
            elif isinstance(init, (ast.FunctionDef, ast.AsyncFunctionDef)):
                entry["params"] = _params(init.args, drop_first=True)
            elif _is_dataclass(node):
                entry["params"] = self._dataclass_fields(module, source, node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = {ast.get_source_segment(source.text, d) or "" for d in node.decorator_list}
            entry["kind"] = "rule" if _is_rule(node) else ("property" if "property" in decorators else "function")
            first = node.args.args[0].arg if node.args.args else None
            drop = "staticmethod" not in decorators and first in ("self", "cls")
            if not any("overload" in d for d in decorators):
                entry["params"] = _params(node.args, drop_first=drop)
            if entry["kind"] == "rule" and node.returns is not None:
                entry["returns"] = ast.get_source_segment(source.text, node.returns)
        elif isinstance(node, ast.ImportFrom):
            entry["kind"] = "import"
        else:
            entry["kind"] = "assignment"
            value = getattr(node, "value", None)
            if isinstance(value, ast.Name) and source.tree is not None:
                target = _top(source.tree, value.id)
                if isinstance(target, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_rule(target):
                    entry["kind"] = "rule"  # an alias, e.g. execute_process_or_raise
                    entry["params"] = _params(target.args, drop_first=False)
        if module == NATIVE:
            entry["native"] = True
        return entry


def _requirement_pin(text: str | None, name: str) -> str | None:
    for line in (text or "").splitlines():
        match = re.match(rf"^{re.escape(name)}\s*==\s*([^\s;#]+)", line.strip(), re.IGNORECASE)
        if match:
            return match.group(1)
    return None


def snapshot(git_dir: str, tag: str, label: str | None = None) -> dict[str, Any]:
    tree = Tree(git_dir, tag)
    version_text = tree.show("src/python/pants/VERSION")
    if version_text is None:
        raise SnapshotError(f"{git_dir} has no src/python/pants/VERSION at {tag!r}: is it a pantsbuild/pants clone with that tag?")
    commit = subprocess.run(
        ["git", "-C", git_dir, "rev-parse", f"{tag}^{{commit}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    build = tree.show("src/python/pants/BUILD") or ""
    python_requires = re.search(r'python_requires="([^"]+)"', build)
    resolver = Resolver(tree)
    names = {}
    for key in sorted({use.key for use in collect_uses(PLUGIN)}):
        module, _, qualname = key.partition(":")
        names[key] = resolver.describe(module, qualname)
    return {
        "schema": SCHEMA,
        "tag": label or tag,
        "commit": commit,
        "pants_version": version_text.strip(),
        "python_requires": python_requires.group(1) if python_requires else None,
        "packaging": _requirement_pin(tree.show("3rdparty/python/requirements.txt"), "packaging"),
        "names": names,
    }


def read_tags() -> list[tuple[str, str]]:
    """(label, revision) per line of tags.txt: `release_2.NN.M`, or `LABEL COMMIT`."""
    entries = []
    for line in TAGS.read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            entries.append((fields[0], fields[-1]))
    return entries


def write(document: dict[str, Any]) -> Path:
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    path = SNAPSHOTS / f"{document['tag']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pants-git", required=True, help="a pantsbuild/pants clone (a bare one will do)")
    parser.add_argument("--add", metavar="TAG", help="snapshot this new tag and append it to tags.txt")
    parser.add_argument("tags", nargs="*", help="tags to snapshot (default: every tag in tags.txt)")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 11):
        print("snapshot.py: run it with Python 3.11 or newer (newer Pants sources use its syntax).", file=sys.stderr)
        return 2
    known = dict(read_tags())
    tags = [args.add] if args.add else (args.tags or list(known))
    try:
        for label in tags:
            document = snapshot(args.pants_git, known.get(label, label), label)
            unknown = sorted(k for k, v in document["names"].items() if v["status"] == "unknown")
            print(f"{write(document).relative_to(ROOT)}: Pants {document['pants_version']} at {document['commit'][:10]}"
                  + (f"; unknown (unparsable or opaque bases): {', '.join(unknown)}" if unknown else ""))
    except (SnapshotError, subprocess.CalledProcessError) as e:
        print(f"snapshot.py: {e}", file=sys.stderr)
        return 1
    if args.add and args.add not in known:
        with TAGS.open("a") as out:
            out.write(args.add + "\n")
        print(f"added {args.add} to {TAGS.relative_to(ROOT)}; now run the check (./scripts/test -k pants_api) "
              "and build-support/pants_api/mypy_per_tag.py, then raise SUPPORTED_PANTS in "
              "pants-plugins/export_dists/pants_support.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
