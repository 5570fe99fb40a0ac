"""`export-dists-uv`: export a uv workspace's members as wheels with content versions and `==` pins."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from export_dists_core.versions import DEFAULT_TEMPLATE, VersionTemplateError

from export_dists_uv.build import BuildFailed, default_cache_dir
from export_dists_uv.export import DirtyTree, ExportOptions, build_export, explain, summary, write
from export_dists_uv.git import GitError
from export_dists_uv.stamp import StampError
from export_dists_uv.workspace import WorkspaceError

DESCRIPTION = """\
Export every member of a uv workspace (and the root project when it is a package) as a wheel built
by its own build backend, then stamped: the version names the newest first-parent commit that
changed the member or a workspace member it depends on (`0.<count>+g<sha>`), Requires-Dist on
workspace members is pinned `==` to their versions, and .dist-info/export_dists.json records where
it came from. Writes OUTPUT_DIR/<sha>/ (manifest.json, wheels, a static simple/ index), the same
export directory `pants export-dists` writes, so `export-dists-relay` serves it and pip, uv and pex
install from it. Prints that directory.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="export-dists-uv", description=DESCRIPTION)
    p.add_argument("root", nargs="?", type=Path, default=Path("."),
                   help="the workspace root: the directory whose pyproject.toml has [tool.uv.workspace] (default: .)")
    p.add_argument("--output-dir", type=Path, metavar="DIR",
                   help="where <sha>/ is written (default: ROOT/dist/export-dists)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="built wheels by content, reused by every later export (default: "
                   "$XDG_CACHE_HOME/export-dists-uv or ~/.cache/export-dists-uv)")
    p.add_argument("--version-template", default=DEFAULT_TEMPLATE, metavar="TEMPLATE",
                   help="each member's version from its origin commit: {count} (first-parent count), "
                   "{sha}, {short_sha} (default: %(default)s)")
    p.add_argument("--namespace", help="recorded in the manifest and each wheel's export_dists.json "
                   "(default: the root project's name, else 'workspace')")
    p.add_argument("--allow-dirty", action="store_true",
                   help="export uncommitted changes to <sha>.dirty (changed members get .dirty versions)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="members built at once (default: %(default)s)")
    p.add_argument("--explain", metavar="MEMBER",
                   help="print why a member (name or directory) has its version, inputs, files and "
                   "Requires-Dist; write nothing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.monotonic()
    root = args.root.resolve()
    options = ExportOptions(
        root=root,
        output_dir=(args.output_dir or root / "dist" / "export-dists").resolve(),
        cache_dir=(args.cache_dir or default_cache_dir()).resolve(),
        template=args.version_template,
        namespace=args.namespace,
        allow_dirty=args.allow_dirty,
        jobs=args.jobs,
    )
    try:
        if args.explain:
            explain(options, args.explain, print)
            return 0
        export = build_export(options)
        result, kept = write(options, export)
    except VersionTemplateError as e:
        print(f"export-dists-uv: --version-template = {e}", file=sys.stderr)
        return 1
    except (WorkspaceError, GitError, DirtyTree, BuildFailed, StampError) as e:
        print(f"export-dists-uv: {e}", file=sys.stderr)
        return 1
    print(summary(export, result, started) + (f" (with {kept} more dists of an earlier export of this commit)" if kept else ""), file=sys.stderr)
    print(result.path)
    return 0
