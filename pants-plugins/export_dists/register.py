"""The export-dists backend: one intransitive wheel per exportable target, `pants export-dists ::`."""
from __future__ import annotations

from export_dists import dists, export, goal, requirements, toplevel, versioning
from export_dists.target_types import ExportDistsEnvironmentTarget, target_types_with_fields


def rules():
    return [
        *dists.rules(),
        *export.rules(),
        *goal.rules(),
        *requirements.rules(),
        *toplevel.rules(),
        *versioning.rules(),
        *target_types_with_fields(),
    ]


def target_types():
    return [ExportDistsEnvironmentTarget]
