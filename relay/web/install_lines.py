"""The lines a person copies to install from this relay: every absolute URL they hold is built here.

Three facts shape them:
- the relay as the only index (`--index-url`) is safe from dependency confusion, but needs
  `--upstream`; without one, third-party requirements come from the public index, given as an
  extra index (pip merges indexes; uv asks its extra indexes first, so for uv the relay is the
  extra one and is asked first);
- uv installs a URL requirement of a dependency (`pkg @ git+https://...`) only when it is also a
  direct requirement or a constraint: when the export has URL requirements, every line carries a
  constraints file (the ref's, so the line still follows a branch);
- an upgrade moves the monorepo's dists and leaves third-party versions alone unless the new dists
  require otherwise: pip's `--upgrade-strategy only-if-needed` with the commit's constraints (eager
  upgrades every requirement, pip and setuptools included), uv without `--upgrade` (which would
  allow every package to move) but with the constraints, which pin each monorepo dist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence
from urllib.parse import quote

# Third-party requirements come from here when the relay has no --upstream.
PUBLIC_INDEX = "https://pypi.org/simple"


@dataclass(frozen=True)
class Where:
    """How a person's installer reaches this relay."""

    base: str  # the relay's public URL (relay.web.forwarded): https://relay.example.com/prefix/
    auth: bool  # credentials required
    # Lines say USER:PASSWORD where credentials go: only over TLS or to this machine (with auth on
    # over plain HTTP elsewhere, the page tells how to give them without putting them on the wire).
    credentials: bool
    upstream: bool  # other names are redirected to an upstream index


@dataclass(frozen=True)
class Line:
    """A command to copy: its options, then the dists it names (a page may swap those live)."""

    command: str
    names: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join((self.command, *self.names))


@dataclass(frozen=True)
class InstallLines:
    install: Line  # follows the ref (a branch's newest export)
    pinned: Line  # stays on the commit: its constraints file pins every dist
    upgrade: Line  # moves installed monorepo dists to the commit's versions, third-party only if needed
    uv_install: Line
    uv_upgrade: Line
    index_url: str
    constraints_url: str  # the commit's
    ref_constraints_url: str  # the ref's (a branch's moves with it)
    url_requirements: bool  # the export has URL requirements: every line carries constraints
    public_index: str | None  # the extra index for third-party requirements (no --upstream)
    auth: bool  # the relay asks for credentials
    credentials: bool  # the lines say USER:PASSWORD where they go


def relay_url(where: Where, path: str) -> str:
    """An absolute URL of this relay for a person to copy (the one place they are made)."""
    base = where.base.rstrip("/")
    if where.credentials:
        scheme, sep, rest = base.partition("://")
        base = f"{scheme}{sep}USER:PASSWORD@{rest}" if sep else base
    return f"{base}/{path.lstrip('/')}"


def install_lines(
    where: Where, ref: str, sha: str, names: Sequence[str], *, url_requirements: bool, pip: str = "%pip"
) -> InstallLines:
    """The lines for installing `names` (a dist, or a placeholder) from `ref`, whose commit is `sha`."""
    index_url = relay_url(where, f"{quote(ref, safe='/')}/simple/")
    constraints_url = relay_url(where, f"{sha}/constraints.txt")
    ref_constraints_url = relay_url(where, f"{quote(ref, safe='/')}/constraints.txt")
    public = None if where.upstream else PUBLIC_INDEX
    pip_indexes = f"--index-url {index_url}" + (f" --extra-index-url {public}" if public else "")
    # uv asks --extra-index-url first: the relay goes there so monorepo names are asked of it first.
    uv_indexes = f"--index-url {public} --extra-index-url {index_url}" if public else f"--index-url {index_url}"
    follow = f"-c {ref_constraints_url} " if url_requirements else ""
    pinned = f"-c {constraints_url} "
    dists = tuple(names)
    return InstallLines(
        install=Line(f"{pip} install {follow}{pip_indexes}", dists),
        pinned=Line(f"{pip} install {pinned}{pip_indexes}", dists),
        upgrade=Line(f"{pip} install --upgrade --upgrade-strategy only-if-needed {pinned}{pip_indexes}", dists),
        uv_install=Line(f"uv pip install {follow}{uv_indexes}", dists),
        uv_upgrade=Line(f"uv pip install {pinned}{uv_indexes}", dists),
        index_url=index_url,
        constraints_url=constraints_url,
        ref_constraints_url=ref_constraints_url,
        url_requirements=url_requirements,
        public_index=public,
        auth=where.auth,
        credentials=where.credentials,
    )
