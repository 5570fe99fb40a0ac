"""The values an export is made of: its request, each planned dist, their origins, the result."""
from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address
from pants.util.frozendict import FrozenDict

from export_dists.dists import DistIdentity, DistPlan, NamingSettings
from export_dists.findings import DEFAULT_EXAMPLES
from export_dists_core.layout import ExportedDist, ExportInfo
from export_dists.requirements import RequirementLine
from export_dists.subsystem import UnexportableDependencies, VersionScheme


@dataclass(frozen=True)
class ExportRequest:
    roots: tuple[Address, ...]  # target generators (or lone targets) named by the specs
    settings: NamingSettings
    version_template: str
    allow_dirty: bool
    pin_from_lockfiles: bool
    unexportable: UnexportableDependencies
    output_dir: str | None = None  # where the export is written: its earlier exports are not changes
    version_scheme: VersionScheme = VersionScheme.CONTENT
    url_requirement_map: FrozenDict[str, str] = FrozenDict()  # project -> plain requirement
    refuse_top_level: bool = True  # refuse a top-level `__init__.py` or `tests` (not while explaining)
    warning_examples: int = DEFAULT_EXAMPLES  # instances each warning lists (findings.py)
    reuse_plans: bool = True  # keep the plans of the export before that a commit cannot change (replan.py)


@dataclass(frozen=True)
class PlannedDist:
    plan: DistPlan
    requirements: tuple[RequirementLine, ...]
    version: str = ""
    origin: DistOrigin | None = None
    fingerprint: str = ""


@dataclass(frozen=True)
class DistOrigin:
    """The commit a dist's version names: the exported one, or where its content appeared."""

    sha: str
    count: int
    epoch: int
    time: str
    dirty: bool = False  # its files differ from that commit (uncommitted changes)


@dataclass(frozen=True)
class Export:
    info: ExportInfo
    dists: tuple[ExportedDist, ...]
    planned: tuple[PlannedDist, ...]  # same order as dists
    requested: tuple[Address, ...]
    skipped: tuple[DistIdentity, ...]  # named by the specs but not exportable


@dataclass(frozen=True)
class WheelSettings:
    """What a wheel carries besides its files and requirements."""

    version: str
    sha: str  # the commit the version names
    namespace: str
    dirty: bool
    commit_epoch: int
    fingerprint: str | None = None  # recorded in export_dists.json (version_scheme = "content")
