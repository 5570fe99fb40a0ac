"""The export-dists backend: one intransitive wheel per exportable target, `pants export-dists ::`."""
from __future__ import annotations

import logging

from pants.version import VERSION

from export_dists.pants_support import check_pants_version

# Before the rule modules: on an unsupported Pants they may not even import, and this says why.
_WARNING = check_pants_version(VERSION)
if _WARNING:
    logging.getLogger(__name__).warning(_WARNING)

from export_dists import dists, export, goal, replan, requirements, toplevel, versioning  # noqa: E402
from export_dists.target_types import ExportDistsEnvironmentTarget, target_types_with_fields  # noqa: E402


def rules():
    return [
        *dists.rules(),
        *export.rules(),
        *goal.rules(),
        *replan.rules(),
        *requirements.rules(),
        *toplevel.rules(),
        *versioning.rules(),
        *target_types_with_fields(),
    ]


def target_types():
    return [ExportDistsEnvironmentTarget]
