"""`/<ref>/constraints.txt`: every dist of one commit pinned, plus the URL requirements they declare."""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from relay.contract import Export


def url_requirements(export: Export) -> tuple[str, ...]:
    """The direct URL requirements (`pkg @ git+https://...`) in the dists' Requires-Dist, as constraints.

    uv installs a URL dependency of a dependency only when it is also a requirement or a constraint,
    so a constraints file that pins the commit must carry them. pip refuses extras in a constraint:
    they are dropped (the requirement that names them still asks for them). Markers are kept.
    """
    found: set[str] = set()
    for dist in export.dists:
        for text in dist.requires_dist:
            if "@" not in text:  # cheap: every URL requirement has one, a name pin has none
                continue
            try:
                parsed = Requirement(text)
            except InvalidRequirement:
                continue
            if parsed.url:
                parsed.extras = set()
                found.add(str(parsed))
    return tuple(sorted(found, key=lambda line: (canonicalize_name(Requirement(line).name), line)))


def constraints_text(export: Export, ref: str) -> str:
    lines = [f"# {len(export.dists)} dists of {export.key} ({export.version}), ref {ref!r}"]
    lines += [f"{d.name}=={d.version}" for d in export.dists]
    urls = url_requirements(export)
    if urls:
        lines.append(f"# {len(urls)} URL requirements of these dists (uv needs them here to install them)")
        lines += urls
    return "\n".join(lines) + "\n"
