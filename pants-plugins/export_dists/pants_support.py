"""Which Pants releases the plugin supports, and the check `register.py` makes when Pants loads it.

The wheel does not require `pantsbuild.pants` (Pants is not on PyPI since 2.18, and Pants resolves
`[GLOBAL].plugins` pinned to its own distributions), so this check is where an unsupported Pants is
refused: by name, with the supported range and what to do.
"""
from __future__ import annotations

import os
from typing import Mapping

from export_dists_core.compat import InvalidVersion, SpecifierSet, Version

# Runtime-tested on 2.17.1; every line from 2.17 to 2.33 and Pants' main at 2.34.0.dev3 are checked
# statically (build-support/pants_api/, README "Supported Pants versions"). Raise the upper bound
# only after adding the new line's snapshot and passing both checks.
SUPPORTED_PANTS = SpecifierSet(">=2.17.1,<2.35", prereleases=True)
# Set to 1 to load the plugin on a Pants outside SUPPORTED_PANTS anyway (a warning instead of an error).
ALLOW_ANY_PANTS = "EXPORT_DISTS_ALLOW_ANY_PANTS"


class UnsupportedPantsVersion(Exception):
    pass


def unsupported_pants_message(version: str) -> str | None:
    """Why the plugin cannot run in Pants `version`, or None when it can."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"export-dists cannot tell which Pants {version!r} is (not a PEP 440 version)."
    if parsed in SUPPORTED_PANTS:
        return None
    newer = parsed >= Version("2.35.0.dev0")
    return (
        f"export-dists supports Pants {SUPPORTED_PANTS} (2.17.1 through 2.34.x), and this is Pants "
        f"{version}. "
        + (
            "Use a newer export-dists if there is one, or pin pants_version in pants.toml to a "
            "supported release; to try this Pants anyway, set "
            f"{ALLOW_ANY_PANTS}=1 (rules may fail to load: the plugin was not checked against it)."
            if newer
            else "Upgrade Pants (pants_version in pants.toml) to 2.17.1 or newer."
        )
    )


def check_pants_version(version: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Raise UnsupportedPantsVersion outside SUPPORTED_PANTS; with ALLOW_ANY_PANTS=1, return the
    message instead (for a warning). None when the version is supported."""
    message = unsupported_pants_message(version)
    if message is None:
        return None
    if (os.environ if environ is None else environ).get(ALLOW_ANY_PANTS) == "1":
        return message
    raise UnsupportedPantsVersion(message)
