"""Search over a ref's dists by what people type: dist names, Pants addresses and module names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from relay.contract import Dist
from relay.index.wheel_contents import WheelContents

# Separators people use interchangeably: monorepo.a.b, monorepo-a-b, monorepo_a_b, src/python/a:b, a/b.py.
_SEPARATORS = re.compile(r"[\s._/:\\-]+")
# `import a.b`, `from a.b import c` (as copied from a notebook cell).
_IMPORT = re.compile(r"^\s*(?:import\s+([\w.]+)|from\s+([\w.]+)\s+import\s+(\w+))", re.ASCII)


def normalize(text: str) -> str:
    """Lowercase, every run of separators one dot, a .py suffix and the ends' dots dropped."""
    text = text.strip().lower()
    if text.endswith(".py"):
        text = text[:-3]
    return _SEPARATORS.sub(".", text).strip(".")


def normalize_query(query: str) -> str:
    match = _IMPORT.match(query)
    if match:
        query = match.group(1) or f"{match.group(2)}.{match.group(3)}"
    return normalize(query)


@dataclass(frozen=True)
class Hit:
    dist: Dist
    field: str  # "name", "address" or "module": what matched
    module: str | None  # the module that matched


def search_text(dist: Dist, contents: WheelContents | None) -> str:
    """Everything a dist is found by, normalized, space-separated (the page's script filters on it)."""
    parts = [normalize(dist.name), normalize(dist.address)]
    if contents is not None:
        parts += [normalize(m.name) for m in contents.modules]
    return " ".join(parts)


def search(dists: Sequence[Dist], query: str, contents: Mapping[str, WheelContents]) -> list[Hit]:
    """The dists a query finds: exact module or dist names first, then names, addresses, modules.

    An empty query finds every dist, in order.
    """
    q = normalize_query(query)
    if not q:
        return [Hit(d, "name", None) for d in dists]
    ranked: list[tuple[int, int, Hit]] = []
    for position, dist in enumerate(dists):
        name, address = normalize(dist.name), normalize(dist.address)
        found = contents.get(dist.project)
        modules = [m.name for m in found.modules] if found is not None else []
        exact = next((m for m in modules if normalize(m) == q), None)
        if name == q or exact is not None:
            ranked.append((0, position, Hit(dist, "module" if exact and name != q else "name", exact)))
        elif q in name:
            ranked.append((1, position, Hit(dist, "name", None)))
        elif q in address:
            ranked.append((2, position, Hit(dist, "address", None)))
        else:
            module = next((m for m in modules if q in normalize(m)), None)
            if module is not None:
                ranked.append((3, position, Hit(dist, "module", module)))
    return [hit for _, _, hit in sorted(ranked, key=lambda r: (r[0], r[1]))]
