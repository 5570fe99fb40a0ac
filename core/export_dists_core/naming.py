"""Dist names: a target's address -> `<namespace>.<directory as dots>[.<name>]`."""
from __future__ import annotations

import re
from typing import Mapping

# PEP 508 names: letters, digits, and . _ - inside; must start and end with a letter or digit.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


class InvalidDistName(ValueError):
    pass


def normalize(name: str) -> str:
    """PEP 503 normalization: what indexes and installers compare names by."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_valid_dist_name(name: str) -> bool:
    return bool(_VALID_NAME.match(name))


def dist_name_for(
    *,
    namespace: str,
    spec_path: str,
    target_name: str,
    source_root: str | None = None,
    parameters: Mapping[str, str] | None = None,
) -> str:
    """The dist name of the target at `spec_path:target_name`.

    `source_root` is stripped from the front of `spec_path` when given (option strip_source_roots).
    A target whose name is its directory's default (the directory's base name) gets no suffix.
    A parametrized target (`a@resolve=py2`) gets its parameter values appended, sorted by
    parameter name (`<namespace>.a.py2`): each parametrization is its own dist.
    """
    path = spec_path.strip("/")
    if source_root is not None and source_root not in ("", "."):
        root = source_root.strip("/")
        if path == root:
            path = ""
        elif path.startswith(root + "/"):
            path = path[len(root) + 1 :]
    parts = [namespace] + [part for part in path.split("/") if part]
    default_name = spec_path.rstrip("/").rsplit("/", 1)[-1] if spec_path else ""
    if target_name and target_name != default_name:
        parts.append(target_name)
    parts.extend(value for _, value in sorted((parameters or {}).items()))
    name = ".".join(parts)
    if not is_valid_dist_name(name):
        raise InvalidDistName(name)
    return name
