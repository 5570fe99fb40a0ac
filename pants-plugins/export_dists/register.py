"""The export-dists backend: one intransitive wheel per exportable target."""
from __future__ import annotations


def rules():
    return []


def target_types():
    return []
