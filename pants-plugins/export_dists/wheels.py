"""Wheels of planned dists: the bytes of each (pure), and the build of an export's set with a cache."""
from __future__ import annotations

from typing import Tuple

from pants.engine.addresses import Address
from pants.engine.fs import MergeDigests
from pants.util.strutil import softwrap

from export_dists.dists import DistPlan
from export_dists.engine import digest_contents, merged
from export_dists.environments import environment_description, is_environment
from export_dists.export_types import ExportRequest, PlannedDist, WheelSettings
from export_dists_core.layout import ExportedDist
from export_dists.subsystem import VersionScheme
from export_dists_core.wheel import CoreMetadata, Wheel, build_wheel, provenance_json
from export_dists.wheel_cache import WheelCache


def wheel_for(
    plan: DistPlan, requires: tuple[str, ...], settings: WheelSettings, contents: dict[str, bytes]
) -> Wheel:
    """The wheel of one planned dist (pure: the files' bytes are given)."""
    address = plan.identity.address.spec
    name = plan.identity.name
    assert name is not None
    environment = is_environment(plan)
    metadata = CoreMetadata(
        name=name,
        version=settings.version,
        summary=f"Pants target {address} at commit {settings.sha}",
        requires_dist=requires,
        requires_python=plan.requires_python,
        keywords=("export-dists", f"sha={settings.sha}"),
        description=environment_description(plan, settings.sha)
        if environment
        else softwrap(
            f"""
            Exported by export-dists from the Pants target `{address}` at commit `{settings.sha}`.
            This wheel holds only that target's files; its first-party dependencies are separate
            dists pinned to the same commit.
            """
            if settings.fingerprint is None
            else f"""
            Exported by export-dists from the Pants target `{address}` as of commit
            `{settings.sha}`, the newest commit that changed it or its first-party dependencies.
            This wheel holds only that target's files; its first-party dependencies are separate
            dists, pinned to their own versions.
            """
        ),
    )
    provenance = provenance_json(
        sha=settings.sha,
        address=address,
        namespace=settings.namespace,
        version=settings.version,
        dirty=settings.dirty,
        fingerprint=settings.fingerprint,
        environment=environment,
    )
    return build_wheel(
        metadata,
        {**{owned.wheel_path: contents[owned.path] for owned in plan.files}, **{m: b"" for m in plan.markers}},
        timestamp=settings.commit_epoch,
        extra_dist_info={"export_dists.json": provenance},
    )


# Wheels already built in this process (pantsd keeps it across runs), by everything their bytes
# are made of: a dist whose content and origin did not change is not built again.
WheelKey = Tuple[str, WheelSettings, Tuple[str, ...]]
BUILT: WheelCache[WheelKey] = WheelCache()


async def build_wheels(planned: list[PlannedDist], settings: dict[Address, WheelSettings]) -> list[Wheel]:
    """The wheel of each planned dist, in order: from BUILT, or built from one read of the files."""
    keys: list[WheelKey] = [
        (p.fingerprint, settings[p.plan.identity.address], tuple(line.text for line in p.requirements))
        for p in planned
    ]
    # Taken before anything is built: building may drop an older entry this export needs.
    found = [BUILT.get(key) for key in keys]
    missing = [p for p, wheel in zip(planned, found) if wheel is None]
    contents: dict[str, bytes] = {}
    if missing:
        # One read of every file to build, rather than one rule (and engine round trip) per dist.
        files = await merged(MergeDigests(p.plan.digest for p in missing))
        contents = {entry.path: entry.content for entry in await digest_contents(files)}
    wheels = []
    for p, key, wheel in zip(planned, keys, found):
        if wheel is None:
            requires = tuple(line.text for line in p.requirements)
            wheel = wheel_for(p.plan, requires, settings[p.plan.identity.address], contents)
            BUILT.put(key, wheel)
        wheels.append(wheel)
    return wheels


async def exported_dists(planned: list[PlannedDist], request: ExportRequest) -> tuple[ExportedDist, ...]:
    """The export's dists: each planned dist with its wheel."""
    content_scheme = request.version_scheme == VersionScheme.CONTENT
    settings = {
        p.plan.identity.address: WheelSettings(
            version=p.version,
            sha=p.origin.sha,
            namespace=request.settings.namespace,
            dirty=p.origin.dirty,
            commit_epoch=p.origin.epoch,
            fingerprint=p.fingerprint if content_scheme else None,
        )
        for p in planned
        if p.origin is not None
    }
    wheels = await build_wheels(planned, settings)
    return tuple(
        ExportedDist(
            name=p.plan.identity.name or "",
            version=p.version,
            address=p.plan.identity.address.spec,
            wheel=wheel,
            requires_dist=tuple(line.text for line in p.requirements),
            requires_python=p.plan.requires_python,
            origin=p.origin.sha if p.origin else None,
            fingerprint=p.fingerprint,
            dirty=bool(p.origin and p.origin.dirty),
        )
        for p, wheel in zip(planned, wheels)
    )
