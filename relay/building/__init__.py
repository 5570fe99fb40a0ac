"""Pull mode: a commit's export built on request by a queue of builders, and published to the store."""

from __future__ import annotations

from relay.building import build_systems
from relay.building.build_systems import BuildSystemError
from relay.building.builders import COLD_EXPORT_COMMAND, WARM_EXPORT_COMMAND, ExportCommand, WarmLimits
from relay.building.log import BuildLog
from relay.building.materialize import Limits, Materializer, WorkDirInUse, claim_work_dir, default_work_dir

__all__ = [
    "COLD_EXPORT_COMMAND",
    "WARM_EXPORT_COMMAND",
    "BuildLog",
    "BuildSystemError",
    "ExportCommand",
    "Limits",
    "Materializer",
    "WarmLimits",
    "WorkDirInUse",
    "build_systems",
    "claim_work_dir",
    "default_work_dir",
]
