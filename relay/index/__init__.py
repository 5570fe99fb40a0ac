"""The index: a ref to the exports it lists, and those exports as simple-API pages and constraints."""

from __future__ import annotations

from relay.index.constraints import constraints_text
from relay.index.refs import RefError, Refs, View

__all__ = ["RefError", "Refs", "View", "constraints_text"]
