"""Direct URL requirements (`pkg @ git+https://...`): mapped on purpose, reported once each."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Iterable, Mapping

from pants.util.strutil import softwrap

from export_dists_core.compat import InvalidRequirement, Requirement, Specifier, canonicalize_name
from export_dists.findings import Cause, Finding

logger = logging.getLogger(__name__)


class InvalidUrlRequirementMap(Exception):
    pass


@functools.lru_cache(maxsize=4096)
def _parsed(requirement: str) -> Requirement:
    """`Requirement(requirement)`, remembered: packaging 21.3 parses with pyparsing (about 1 ms a
    string) and every export asks again about every dist's lines. Never modify what it returns."""
    return Requirement(requirement)


def url_of(requirement: str) -> str | None:
    """The URL of a direct URL requirement, None for a named one (or one packaging cannot read)."""
    try:
        return _parsed(requirement).url or None
    except InvalidRequirement:
        return None


@dataclass(frozen=True)
class UrlRequirementMap:
    """[export-dists].url_requirement_map, checked: project -> the plain requirement to export instead."""

    replacements: Mapping[str, Requirement]

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> "UrlRequirementMap":
        replacements: dict[str, Requirement] = {}
        for project, text in sorted(raw.items()):
            problem = None
            try:
                parsed = Requirement(str(text))
            except InvalidRequirement as e:
                problem = f"it is not a valid requirement ({e})"
            else:
                if parsed.url:
                    problem = "it has a URL itself; give a name and a version specifier, e.g. `pkg==1.6.0`"
                elif canonicalize_name(parsed.name) != canonicalize_name(project):
                    problem = f"it names the project {parsed.name!r}, not {project!r}"
                elif not all(isinstance(spec, Specifier) for spec in parsed.specifier):
                    problem = "its version specifier is not valid PEP 440 (pip >= 24.1 and uv refuse it)"
            if problem:
                raise InvalidUrlRequirementMap(
                    softwrap(
                        f"""
                        [export-dists].url_requirement_map maps {project!r} to {text!r}, but
                        {problem}. Each entry maps a project name to the requirement to export
                        instead of its URL requirement, e.g. `{{"pkg": "pkg==1.6.0"}}`.
                        """
                    )
                )
            replacements[canonicalize_name(project)] = parsed
        return cls(replacements)

    def replace(self, requirement: str) -> str | None:
        """The plain requirement exported instead of the URL requirement `requirement`, if mapped.

        The original's extras and marker are kept unless the replacement gives its own.
        """
        if not self.replacements:
            return None  # nothing mapped (the default): no need to read the requirement at all
        parsed = _parsed(requirement)
        replacement = self.replacements.get(canonicalize_name(parsed.name))
        if not parsed.url or replacement is None:
            return None
        mapped = Requirement(str(replacement))
        mapped.extras = mapped.extras or parsed.extras
        mapped.marker = mapped.marker or parsed.marker
        return str(mapped)


URL_REQUIREMENTS = Cause(
    "direct URL requirements in Requires-Dist",
    softwrap(
        """
        pip installs one only where its URL is reachable, and clones a git URL again on every
        install and upgrade that considers it; uv refuses a URL dependency of a dependency unless
        it is also a requirement or a constraint: install with `-c <relay>/<ref>/constraints.txt`,
        which lists the ref's URL requirements. A team that mirrors such a package to an index can
        export a plain requirement instead: [export-dists].url_requirement_map = {"pkg":
        "pkg==VERSION"}.
        """
    ),
    one="direct URL requirement in Requires-Dist",
)


def url_requirement_findings(
    dists_by_requirement: Mapping[str, Iterable[str]], mapped: Mapping[str, str]
) -> list[Finding]:
    """One finding per URL requirement left in Requires-Dist, naming the dists that declare it."""
    findings = []
    for requirement, dists in sorted(dists_by_requirement.items()):
        names = sorted(set(dists))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        findings.append(
            Finding(URL_REQUIREMENTS, f"{requirement!r} in {len(names)} dist{'' if len(names) == 1 else 's'} ({shown})")
        )
    for original, replacement in sorted(mapped.items()):
        logger.info(
            f"The URL requirement {original!r} is exported as {replacement!r} "
            "([export-dists].url_requirement_map)."
        )
    return findings
