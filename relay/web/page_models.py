"""What the pages for people show, as plain data: the home page, a ref's dists and search, and one dist's page.

Built from the manifests (relay.contract), the View a ref resolves to (relay.index.refs), the wheels'
contents and git history; rendering is the templates' job, so each page is tested here without HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence
from urllib.parse import quote

from relay.building.log import BuildLog
from relay.index.constraints import url_requirements
from relay.contract import Dist, Export, recency
from relay.index.history import (
    Commit,
    RequirementChange,
    VersionRow,
    export_changes,
    parse_requirement,
    version_rows,
)
from relay.web.install_lines import InstallLines, Where, install_lines
from relay.index.refs import View
from relay.index.render import file_url
from relay.index.search import Hit, search, search_text
from relay.index.wheel_contents import WheelContents
from relay.storage.store import StoredExport

# A name for the install lines where no dist is chosen.
PLACEHOLDER = "NAME"
KINDS = {"sha": "commit", "branch": "branch", "tag": "tag"}


def dist_path(project: str) -> str:
    """A dist's page, relative to its ref's page: `<ref>/-/<project>/`. A branch is never named `-`
    (git refuses a name starting with `-`), so `-/` keeps dist pages apart from refs with slashes."""
    return f"-/{quote(project, safe='')}/"


@dataclass(frozen=True)
class RefHeader:
    """What every page of a ref says about it."""

    ref: str
    kind: str  # "commit", "branch" or "tag"
    sha: str
    version: str
    commit_time: str
    namespace: str
    dists: int
    older_exports: int  # a branch index also lists these
    building: str | None  # a newer tip being built (a branch served from its newest built commit)


def ref_header(view: View) -> RefHeader:
    tip = view.tip
    return RefHeader(
        ref=view.ref,
        kind=KINDS.get(view.kind, view.kind),
        sha=view.sha,
        version=tip.version,
        commit_time=tip.commit_time,
        namespace=tip.namespace,
        dists=len(tip.dists),
        older_exports=len(view.exports) - 1,
        building=view.building,
    )


@dataclass(frozen=True)
class DistRow:
    """One dist in a ref's table."""

    dist: Dist
    link: str  # its page, relative to the ref's page
    environment: bool
    matched: str  # what the search matched: "name", "address" or "module"
    module: str | None  # the module the search matched
    search: str  # normalized text the page's script filters on
    modules: int | None  # how many modules it ships (None: not read)
    hidden: bool  # not found by the query: listed hidden, so the page's script can show it again


@dataclass(frozen=True)
class RefPage:
    header: RefHeader
    query: str
    rows: tuple[DistRow, ...]  # what the query found (ranked), then the rest, hidden
    shown: int  # how many it found
    lines: InstallLines  # for the first dist found (or a placeholder)
    url_requirements: tuple[str, ...]  # why every line carries a constraints file
    upgrade_from: str | None  # the previous export of the ref (key), for `changes`
    changes: tuple[RequirementChange, ...]  # third-party lines an upgrade from it changes
    upstream: bool


def ref_page_model(
    view: View, where: Where, query: str, contents: Mapping[str, WheelContents]
) -> RefPage:
    tip = view.tip
    hits: list[Hit] = search(tip.dists, query, contents)
    found = {hit.dist.project for hit in hits}
    rest = [Hit(d, "name", None) for d in tip.dists if d.project not in found]
    rows = tuple(
        DistRow(
            dist=hit.dist,
            link=dist_path(hit.dist.project),
            environment=_environment(contents.get(hit.dist.project)),
            matched=hit.field,
            module=hit.module,
            search=search_text(hit.dist, contents.get(hit.dist.project)),
            modules=_module_count(contents.get(hit.dist.project)),
            hidden=hidden,
        )
        for hits_or_rest, hidden in ((hits, False), (rest, True))
        for hit in hits_or_rest
    )
    example = hits[0].dist.name if hits else (tip.dists[0].name if tip.dists else PLACEHOLDER)
    urls = url_requirements(tip)
    previous = view.exports[1] if len(view.exports) > 1 else None
    return RefPage(
        header=ref_header(view),
        query=query,
        rows=rows,
        shown=len(hits),
        lines=install_lines(where, view.ref, view.sha, (example,), url_requirements=bool(urls)),
        url_requirements=urls,
        upgrade_from=previous.key if previous is not None else None,
        changes=export_changes(previous, tip) if previous is not None else (),
        upstream=where.upstream,
    )


def _environment(contents: WheelContents | None) -> bool:
    return contents is not None and contents.environment


def _module_count(contents: WheelContents | None) -> int | None:
    return None if contents is None else len(contents.modules)


@dataclass(frozen=True)
class RequirementRow:
    text: str
    link: str | None  # a first-party dist's page, relative to this dist's page
    url: bool  # a direct URL requirement (uv needs it as a constraint)


@dataclass(frozen=True)
class DependentRow:
    name: str
    version: str
    link: str  # relative to this dist's page
    environment: bool


@dataclass(frozen=True)
class FileRow:
    filename: str
    url: str  # relative to this dist's page
    size: int
    sha256: str
    kind: str  # "wheel" or "metadata"


@dataclass(frozen=True)
class DistPage:
    header: RefHeader
    dist: Dist
    contents: WheelContents | None  # None: the wheel could not be read now
    requirements: tuple[RequirementRow, ...]
    dependents: tuple[DependentRow, ...]
    history: tuple[VersionRow, ...]
    files: tuple[FileRow, ...]
    lines: InstallLines
    url_requirements: tuple[str, ...]  # of the ref's export: why the lines carry its constraints
    upstream: bool

    @property
    def environment(self) -> bool:
        return _environment(self.contents)


def dependents_of(export: Export, project: str) -> tuple[Dist, ...]:
    """The dists of an export that require `project` directly."""
    return tuple(
        d for d in export.dists if any(parse_requirement(r).project == project for r in d.requires_dist)
    )


def dist_page_model(
    view: View,
    dist: Dist,
    where: Where,
    *,
    base: str,
    contents: WheelContents | None,
    dependents_contents: Mapping[str, WheelContents],  # of dependents_of(view.tip, dist.project)
    history: Sequence[Export],
    commits: Mapping[str, Commit],
) -> DistPage:
    """The page of one dist of a ref. `base` leads from the page back to the relay's root; `history`
    is the ref's exports newest first (a branch's first-parent line; a commit's own)."""
    tip = view.tip
    up = "../../"  # from <ref>/-/<project>/ to <ref>/
    requirements = []
    for text in dist.requires_dist:
        parsed = parse_requirement(text)
        ours = tip.dist(parsed.project)
        requirements.append(
            RequirementRow(
                text=text,
                link=up + dist_path(ours.project) if ours is not None else None,
                url=parsed.url is not None,
            )
        )
    dependents = tuple(
        DependentRow(
            name=d.name,
            version=d.version,
            link=up + dist_path(d.project),
            environment=_environment(dependents_contents.get(d.project)),
        )
        for d in dependents_of(tip, dist.project)
    )
    # The file is listed under the oldest export of the ref that has it, as the simple API lists it.
    holder = next((x for x in reversed(history) if x.digest(dist.filename) is not None), tip)
    files = (
        FileRow(dist.filename, file_url(base, holder.key, dist.filename), dist.size, dist.sha256, "wheel"),
        FileRow(
            dist.metadata_filename,
            file_url(base, holder.key, dist.metadata_filename),
            dist.metadata_size,
            dist.metadata_sha256,
            "metadata",
        ),
    )
    urls = url_requirements(tip)
    return DistPage(
        header=ref_header(view),
        dist=dist,
        contents=contents,
        requirements=tuple(requirements),
        dependents=dependents,
        history=version_rows(dist.project, history, commits),
        files=files,
        lines=install_lines(where, view.ref, view.sha, (dist.name,), url_requirements=bool(urls)),
        url_requirements=urls,
        upstream=where.upstream,
    )


# The home page (`/`): refs, builds, exports; its refs table is also the 404 page's.

# Failed builds shown with the end of their log, and how many of its lines.
SHOWN_FAILURES = 5
SHOWN_LOG_LINES = 15


@dataclass(frozen=True)
class RefRow:
    """One line of the refs table: a branch or tag and the export it shows (None: none in the store)."""

    name: str
    kind: str  # "branch", "tag" or "default"
    sha: str | None
    export: Export | None


@dataclass(frozen=True)
class ActiveBuild:
    sha: str
    state: str  # "building" or "queued"
    seconds: float  # since it started, or was asked for


@dataclass(frozen=True)
class FailedBuild:
    sha: str
    ago: float  # seconds since it ended
    seconds: float  # how long it ran
    head: str  # the first line of what it answered
    tail: str  # the last SHOWN_LOG_LINES lines of the rest (its log's end)


@dataclass(frozen=True)
class Builds:
    active: tuple[ActiveBuild, ...]
    failures: tuple[FailedBuild, ...]


def builds_model(builds: BuildLog, now: float) -> Builds:
    active = [ActiveBuild(sha, "building", now - t) for sha, t in builds.running.items()]
    active += [ActiveBuild(sha, "queued", now - t) for sha, t in builds.queued.items()]
    failures = []
    for failure in list(builds.failures)[:SHOWN_FAILURES]:
        lines = failure.message.splitlines()
        failures.append(FailedBuild(
            sha=failure.sha,
            ago=now - failure.finished,
            seconds=failure.seconds,
            head=lines[0] if lines else "",
            tail="\n".join(lines[1:][-SHOWN_LOG_LINES:]),
        ))
    return Builds(tuple(active), tuple(failures))


@dataclass(frozen=True)
class HomePage:
    default_ref: str
    rows: tuple[RefRow, ...]
    builds: Builds | None  # None: no pull mode
    exports: tuple[StoredExport, ...]  # most recent first


def home_page_model(
    default_ref: str, rows: Sequence[RefRow], builds: BuildLog | None, exports: Sequence[StoredExport], now: float
) -> HomePage:
    return HomePage(
        default_ref=default_ref,
        rows=tuple(rows),
        builds=None if builds is None else builds_model(builds, now),
        exports=tuple(sorted(exports, key=lambda s: recency(s.export), reverse=True)),
    )
