"""Tools beside serving: `relay verify` (each dist of an export alone in a fresh venv) and its Python."""

from __future__ import annotations

from relay.tools.interpreters import NoSuitablePython, choose_python
from relay.tools.verify import VerifyError, export_source, format_outcome, index_source, select, verify

__all__ = [
    "NoSuitablePython",
    "VerifyError",
    "choose_python",
    "export_source",
    "format_outcome",
    "index_source",
    "select",
    "verify",
]
