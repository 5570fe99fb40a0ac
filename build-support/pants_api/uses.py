"""What the plugin uses of Pants, read from its source: imports, attributes, calls, by-name rule calls.

Plain `ast` over `pants-plugins/export_dists/*.py` (tests aside), no Pants import, Python 3.9+.
Each use carries the version gates it sits under: inside `if PANTS_2_23:` it needs to hold only on
Pants >= 2.23, inside its `else:` only below. `snapshot.py` records, per Pants release, what these
names are; `check.py` compares the two.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

GATE = re.compile(r"^PANTS_2_(\d+)$")


@dataclass(frozen=True)
class Gate:
    """`PANTS_2_<minor>` holds (at least 2.<minor>) when `holds`, else its negation."""

    minor: int
    holds: bool

    def admits(self, version: tuple[int, int]) -> bool:
        return (version >= (2, self.minor)) == self.holds

    def __str__(self) -> str:
        return f"{'' if self.holds else 'not '}PANTS_2_{self.minor}"


@dataclass(frozen=True)
class Use:
    """One use of a Pants name: `module:qualname` (qualname may be `Class.attr`)."""

    module: str
    qualname: str
    where: str  # file:line
    gates: tuple[Gate, ...] = ()
    # For calls: how many positional arguments, which keywords, whether `*args`/`**kwargs` are spread.
    call: tuple[int, tuple[str, ...], bool] | None = None
    by_name: bool = False  # a call with `**implicitly(...)` or to a rule function by name

    @property
    def key(self) -> str:
        return f"{self.module}:{self.qualname}"

    def admitted_by(self, version: tuple[int, int]) -> bool:
        return all(g.admits(version) for g in self.gates)


@dataclass
class _Scope:
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (module, qualname)


def _gate_of(test: ast.expr) -> Gate | None:
    if isinstance(test, ast.Name) and (m := GATE.match(test.id)):
        return Gate(int(m.group(1)), True)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _gate_of(test.operand)
        return Gate(inner.minor, not inner.holds) if inner else None
    return None


class _Collector(ast.NodeVisitor):
    def __init__(self, path: Path, relative: str) -> None:
        self.relative = relative
        self.uses: list[Use] = []
        self.gates: list[Gate] = []
        self.globals: dict[str, tuple[str, str]] = {}
        self.locals: list[dict[str, tuple[str, str]]] = []
        self.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))

    def _where(self, node: ast.AST) -> str:
        return f"{self.relative}:{getattr(node, 'lineno', 0)}"

    def _resolve(self, name: str) -> tuple[str, str] | None:
        for scope in reversed(self.locals):
            if name in scope:
                return scope[name]
        return self.globals.get(name)

    def _add(self, node: ast.AST, module: str, qualname: str, **extra: object) -> None:
        self.uses.append(Use(module, qualname, self._where(node), tuple(self.gates), **extra))  # type: ignore[arg-type]

    def visit_If(self, node: ast.If) -> None:
        gate = _gate_of(node.test)
        self.visit(node.test)
        if gate is not None:
            self.gates.append(gate)
        for child in node.body:
            self.visit(child)
        if gate is not None:
            self.gates[-1] = Gate(gate.minor, not gate.holds)
        for child in node.orelse:
            self.visit(child)
        if gate is not None:
            self.gates.pop()

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.split(".")[0] == "pants":
            for alias in node.names:
                self._add(node, node.module, alias.name)
                target = self.locals[-1] if self.locals else self.globals
                target[alias.asname or alias.name] = (node.module, alias.name)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "pants":
                self._add(node, alias.name, "")

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        scope: dict[str, tuple[str, str]] = {}
        arguments = node.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            # A parameter annotated with a Pants class: its attributes are that class's.
            if isinstance(arg.annotation, ast.Name):
                found = self._resolve(arg.annotation.id)
                if found is not None:
                    scope[arg.arg] = (found[0], found[1] + "()")
            elif isinstance(arg.annotation, ast.Constant) and isinstance(arg.annotation.value, str):
                found = self._resolve(arg.annotation.value)
                if found is not None:
                    scope[arg.arg] = (found[0], found[1] + "()")
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.locals.append(scope)
        for child in node.body:
            self.visit(child)
        self.locals.pop()

    visit_FunctionDef = _function  # type: ignore[assignment]
    visit_AsyncFunctionDef = _function  # type: ignore[assignment]

    def _dotted(self, node: ast.expr) -> tuple[str, str] | None:
        """`Name.attr.attr` rooted at a Pants name -> (module, qualname); instances end in `()`."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        found = self._resolve(node.id)
        if found is None:
            return None
        module, qualname = found
        return module, ".".join([qualname, *reversed(parts)]) if parts else qualname

    def visit_Attribute(self, node: ast.Attribute) -> None:
        found = self._dotted(node)
        if found is not None and "." in found[1]:
            self._add(node, *found)
            return  # the inner names are parts of this use
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        found = self._dotted(node.func)
        if found is not None and not found[1].endswith("()"):
            spread = any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)
            implicit = any(
                k.arg is None and isinstance(k.value, ast.Call) and getattr(k.value.func, "id", "") == "implicitly"
                for k in node.keywords
            )
            positional = sum(1 for a in node.args if not isinstance(a, ast.Starred))
            keywords = tuple(sorted(k.arg for k in node.keywords if k.arg is not None))
            self._add(node, *found, call=(positional, keywords, spread and not implicit), by_name=implicit)
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            if isinstance(node.func, ast.Attribute):
                self.visit(node.func.value)
            return
        self.generic_visit(node)


def plugin_files(plugin_dir: Path) -> list[Path]:
    return sorted(
        p for p in plugin_dir.glob("*.py") if not p.name.endswith("_test.py") and p.name != "conftest.py"
    )


def collect_uses(plugin_dir: Path, files: Iterable[Path] | None = None) -> list[Use]:
    uses: list[Use] = []
    for path in files if files is not None else plugin_files(plugin_dir):
        uses.extend(_Collector(path, f"{plugin_dir.name}/{path.name}").uses)
    return uses


def keys(uses: Iterable[Use]) -> Iterator[str]:
    """Every `module:qualname` the uses need recorded, instance attributes as `Class().attr`."""
    for use in uses:
        yield use.key
