"""Files a dist installs at the top of site-packages: reported, and refused for `__init__.py` and tests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable

from pants.engine.rules import collect_rules, rule
from pants.engine.target import WrappedTargetRequest
from pants.util.strutil import softwrap

from export_dists.dists import ORIGIN, DistPlan, OwnedFile
from export_dists.engine import by_name, concurrently, wrapped_target
from export_dists.findings import Cause, Finding
from export_dists.per_plan import PerPlan
from export_dists.target_types import ExportDistAllowTopLevelField

# Never right at the top of site-packages: `__init__.py` belongs to no package there (every dist that
# ships one overwrites the others'), and `tests` / `test` (the standard library's) are names every
# project would like to have.
REFUSED_NAMES = frozenset({"__init__.py", "tests", "test", "tests.py", "test.py"})


class TopLevelFilesError(Exception):
    pass


def top_level_names(files: Iterable[OwnedFile]) -> tuple[str, ...]:
    """What a dist puts at the top of site-packages: packages as `name/`, modules and files as named."""
    names = set()
    for owned in files:
        parts = PurePosixPath(owned.wheel_path).parts
        names.add(parts[0] + "/" if len(parts) > 1 else parts[0])
    return tuple(sorted(names))


@dataclass(frozen=True)
class StrayTopLevel:
    """A dist whose files at the top of site-packages look like a source root set one level too deep."""

    plan: DistPlan
    names: tuple[str, ...]  # the stray names (files, and packages named `tests` or `test`)
    refused: tuple[str, ...]  # those refused unless the target allows them

    @property
    def dist(self) -> str:
        return self.plan.identity.name or self.plan.identity.address.spec


def stray_top_level(plan: DistPlan) -> StrayTopLevel | None:
    """The dist's files at the top of site-packages other than its packages and (alone) modules.

    A lone `mod.py` under a source root is a top-level module on purpose. Data files, `__init__.py`
    or a `tests` package there mean the source root is the package directory itself (one source
    root per plugin pack, say): then its modules (`common.py`) are stray too.
    """
    names = top_level_names(plan.files)
    refused = tuple(n for n in names if n.rstrip("/") in REFUSED_NAMES)
    data = tuple(n for n in names if not n.endswith("/") and not n.endswith(".py"))
    if not refused and not data:
        return None
    stray = tuple(n for n in names if not n.endswith("/") or n in refused)
    return StrayTopLevel(plan, stray, refused)


_STRAY: PerPlan[DistPlan, StrayTopLevel | None] = PerPlan(stray_top_level)


def stray_top_level_of(plans: Iterable[DistPlan]) -> tuple[StrayTopLevel, ...]:
    """The dists among `plans` with stray files at the top of site-packages (each plan looked at
    once while pantsd keeps it: this runs over every dist of every export)."""
    return tuple(s for s in (_STRAY(plan) for plan in plans) if s is not None)


_FIX = softwrap(
    """
    Files at the top of site-packages belong to no package: two dists that ship the same name
    overwrite each other's file, and uninstalling one deletes the other's. Usually the source root
    is the package directory itself (e.g. [source].root_patterns = ["/packs/*"]): make its parent
    the source root, so the files install under the package's name, or move them into a package.
    """
)


TOP_LEVEL = Cause(
    "dists install files at the top of site-packages", _FIX, one="dist installs files at the top of site-packages"
)


def top_level_findings(stray: Iterable[StrayTopLevel]) -> list[Finding]:
    """Warned by the export with its other findings (the check itself only refuses)."""
    return [Finding(TOP_LEVEL, f"{s.dist} ({s.plan.identity.address.spec}): {', '.join(s.names)}") for s in stray]


@dataclass(frozen=True)
class TopLevelCheckRequest:
    # The dists with stray names only (stray_top_level_of): a request holding every plan would be
    # hashed whole by the engine on every export.
    stray: tuple[StrayTopLevel, ...]
    refuse: bool  # False while explaining: show the names rather than stop


@dataclass(frozen=True)
class TopLevelCheck:
    stray: tuple[StrayTopLevel, ...]


@by_name
@rule(desc="Check what dists install at the top of site-packages")
async def check_top_level(request: TopLevelCheckRequest) -> TopLevelCheck:
    stray = request.stray
    if not stray:
        return TopLevelCheck(())
    candidates = [s for s in stray if s.refused]
    wrapped = await concurrently(
        wrapped_target(WrappedTargetRequest(s.plan.identity.address, description_of_origin=ORIGIN))
        for s in candidates
    )
    refused = [s for s, w in zip(candidates, wrapped) if not w.target.get(ExportDistAllowTopLevelField).value]
    if refused and request.refuse:
        raise TopLevelFilesError(
            softwrap(
                f"""
                These dists would install {" or ".join(sorted(REFUSED_NAMES - {"test.py", "tests.py"}))}
                at the top of site-packages, where no dist should:
                """
            )
            + "\n\n"
            + "\n".join(f"- {s.dist} ({s.plan.identity.address.spec}): {', '.join(s.refused)}" for s in refused)
            + "\n\n"
            + _FIX
            + "\n\n"
            + softwrap(
                """
                To ship them anyway, set `export_dist_allow_top_level=True` on the target (or for a
                directory tree with `__defaults__`); to leave a target out, `skip_export_dist=True`.
                """
            )
        )
    return TopLevelCheck(stray)


def rules():
    return collect_rules()
