"""A dist's version from the commit its content is from: the version template, filled."""
from __future__ import annotations

from typing import Sequence

from export_dists_core.compat import InvalidVersion, Version

# `0.<first-parent count>+g<short sha>`: a final release that grows along a branch and names its commit.
DEFAULT_TEMPLATE = "0.{count}+g{short_sha}"


class VersionTemplateError(ValueError):
    """The template is not a template, or fills to no PEP 440 version; the message says which."""


def fill_template(template: str, *, sha: str, count: int, dirty: bool = False) -> str:
    """`template` filled from a first-parent commit; a dirty one gets `.dirty` at the end of its local label."""
    try:
        text = template.format(count=count, sha=sha, short_sha=sha[:12])
    except (KeyError, IndexError, ValueError) as e:
        raise VersionTemplateError(
            f"{template!r} is not a valid template ({e}). Use only the placeholders {{count}}, {{sha}} "
            f"and {{short_sha}}, e.g. the default `{DEFAULT_TEMPLATE}`."
        ) from None
    if dirty:
        text = f"{text}.dirty" if "+" in text else f"{text}+dirty"
    try:
        return str(Version(text))
    except InvalidVersion:
        raise VersionTemplateError(
            f"{template!r} gives {text!r}, which is not a valid PEP 440 version. Use e.g. the default "
            f"`{DEFAULT_TEMPLATE}`."
        ) from None


def shows_commit(version: str, sha: str) -> bool:
    """Whether a version shows its commit (the template has {short_sha} or {sha})."""
    return sha[:7] in version


def explain_version(version: str, *, origin: str | None, exported: str, dirty: bool) -> str:
    """The `version:` line of --explain, the same from every exporter."""
    if origin is None or origin == exported:
        return f"version:  {version}  (commit {exported}{', dirty' if dirty else ''})"
    return f"version:  {version}  (origin {origin}, the newest commit that changed its inputs; exporting {exported})"


def versions_summary(versions: Sequence[str], exported: str) -> str:
    """How an export's dists' versions relate to the exported commit's, for its one-line summary."""
    current = sum(1 for version in versions if version == exported)
    if current == len(versions):
        return f"at version {exported}"
    return f"{current} at version {exported}, {len(versions) - current} unchanged at earlier versions"
