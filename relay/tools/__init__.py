"""Tools beside serving: `relay verify` (each dist of an export alone in a fresh venv) and its Python."""

from __future__ import annotations

from relay.tools.interpreters import NoSuitablePython, choose_python
# `verify` the function stays in relay.tools.verify: re-exported here it would hide that module.
from relay.tools.verify import INSTALLERS, VerifyError, export_source, format_outcome, index_source, select

__all__ = [
    "INSTALLERS",
    "NoSuitablePython",
    "VerifyError",
    "choose_python",
    "export_source",
    "format_outcome",
    "index_source",
    "select",
]
