"""Python files a dist ships that no import can reach: a directory `v3.5`, a module `my-tool.py`."""
from __future__ import annotations

import keyword
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable

from export_dists.findings import Cause


@dataclass(frozen=True)
class UnimportableFile:
    """A `.py` file whose path in site-packages is not a dotted module name."""

    wheel_path: str
    part: str  # the first directory or module name that is not a Python identifier

    @property
    def why(self) -> str:
        if keyword.iskeyword(self.part):
            return f"`{self.part}` is a Python keyword"
        return f"`{self.part}` is not a Python identifier"


def unimportable_part(wheel_path: str) -> str | None:
    """The first part of a `.py` file's module path that an import statement cannot name, if any."""
    path = PurePosixPath(wheel_path)
    if path.suffix != ".py":
        return None  # data files are read by path, not imported
    for part in (*path.parts[:-1], path.stem):
        if not part.isidentifier() or keyword.iskeyword(part):
            return part
    return None


def unimportable_files(wheel_paths: Iterable[str]) -> tuple[UnimportableFile, ...]:
    """The files among `wheel_paths` (paths in the wheel, as installed) that cannot be imported."""
    found = []
    for wheel_path in sorted(wheel_paths):
        part = unimportable_part(wheel_path)
        if part is not None:
            found.append(UnimportableFile(wheel_path, part))
    return tuple(found)


UNIMPORTABLE = Cause(
    "dists ship Python files that no import can reach (a name in their module path is not an identifier)",
    "They install, but `import` cannot name them (`bin/migrations/v3.5/x.py` would be "
    "`bin.migrations.v3.5.x`), and `relay verify` reports the dist as failing. Scripts run by path "
    "belong in a `resources` (or `files`) target; or leave the target out with "
    "`skip_export_dist=True` on it or a pattern in [export-dists].skip_paths (e.g. "
    '`"st2common/bin/migrations/v3.5"`); or rename the directory to an identifier (`v3_5`).',
    one="dist ships Python files that no import can reach (a name in their module path is not an identifier)",
)
