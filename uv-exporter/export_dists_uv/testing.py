"""Test support: a sample uv workspace in a fresh git repository, and the exporter run on it."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

ROOT_PYPROJECT = """\
[project]
name = "acme"
version = "0.0.1"
requires-python = ">=3.8"
dependencies = ["acme-core"]

[tool.uv.workspace]
members = ["packages/*"]
exclude = ["packages/scratch"]

[tool.uv.sources]
acme-core = { workspace = true }
acme-utils = { workspace = true }

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/acme"]
"""

# Six members, five backends: hatchling (static version), setuptools (extras and markers on a
# sibling), hatchling + hatch-vcs (dynamic version written into a file), flit_core (version from
# the module), hatchling + uv-dynamic-versioning (dynamic version, `{{ version }}` pins on members
# in dynamic dependencies), and a member with no [build-system] (virtual: not exported).
MEMBERS: Mapping[str, Mapping[str, str]] = {
    "packages/core": {
        "pyproject.toml": """\
[project]
name = "acme-core"
version = "1.2.3"
description = "core"
requires-python = ">=3.8"

[project.optional-dependencies]
fast = []

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/acme_core"]
""",
        "src/acme_core/__init__.py": "VALUE = 'core'\n",
    },
    "packages/utils": {
        "pyproject.toml": """\
[project]
name = "acme_utils"
version = "0.1.0"
description = "utils"
dependencies = [
    "acme-core[fast]>=1.0; python_version >= '3.8'",
    "requests>=2; python_version < '3'",
]

[project.optional-dependencies]
cli = ["acme-core"]

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[tool.setuptools.packages.find]
where = ["src"]
""",
        "src/acme_utils/__init__.py": "from acme_core import VALUE\n\nUTILS = VALUE + '+utils'\n",
    },
    "packages/dyn": {
        "pyproject.toml": """\
[project]
name = "acme-dyn"
dynamic = ["version"]
description = "a version from git"
dependencies = ["acme-utils"]

[tool.uv.sources]
acme-utils = { workspace = true }

[build-system]
requires = ["hatchling", "hatch-vcs"]
build-backend = "hatchling.build"

[tool.hatch.version]
source = "vcs"

[tool.hatch.build.hooks.vcs]
version-file = "src/acme_dyn/_version.py"

[tool.hatch.build.targets.wheel]
packages = ["src/acme_dyn"]
""",
        "src/acme_dyn/__init__.py": "from acme_utils import UTILS\n",
    },
    "packages/leaf": {
        "pyproject.toml": """\
[project]
name = "acme-leaf"
dynamic = ["version", "description"]

[build-system]
requires = ["flit_core>=3.4,<4"]
build-backend = "flit_core.buildapi"
""",
        "acme_leaf.py": '"""A leaf nobody depends on."""\n__version__ = "3.0"\n',
    },
    "packages/tmpl": {
        "pyproject.toml": """\
[project]
name = "acme-tmpl"
dynamic = ["version", "dependencies"]

[tool.uv.sources]
acme-core = { workspace = true }
acme-utils = { workspace = true }

[build-system]
requires = ["hatchling", "uv-dynamic-versioning"]
build-backend = "hatchling.build"

[tool.hatch.version]
source = "uv-dynamic-versioning"

[tool.hatch.metadata.hooks.uv-dynamic-versioning]
dependencies = ["acme-core=={{ version }}", "acme-utils[cli]=={{ version }}; python_version >= '3.8'"]

[tool.hatch.build.targets.wheel]
packages = ["src/acme_tmpl"]
""",
        "src/acme_tmpl/__init__.py": "import acme_core, acme_utils\n",
    },
    "packages/notes": {
        "pyproject.toml": '[project]\nname = "acme-notes"\nversion = "0"\n',
    },
    "packages/scratch": {"README.md": "excluded from the workspace\n"},
}

ENV_FOR_GIT = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env={**os.environ, **ENV_FOR_GIT}
    ).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def write_files(repo: Path, files: Mapping[str, str]) -> None:
    for relpath, text in files.items():
        path = repo / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def sample_workspace(repo: Path) -> Path:
    """The sample workspace, committed on `main` in a new repository at `repo`."""
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    files = {"pyproject.toml": ROOT_PYPROJECT, "src/acme/__init__.py": "from acme_core import VALUE\n", ".gitignore": "dist/\n"}
    for directory, member_files in MEMBERS.items():
        files.update({f"{directory}/{name}": text for name, text in member_files.items()})
    write_files(repo, files)
    commit_all(repo, "a uv workspace")
    return repo


def uv_environment() -> dict[str, str]:
    """uv and pip as this machine needs them: its CA bundle, no user-level pip configuration."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(bundle):
        env.setdefault("SSL_CERT_FILE", bundle)
    return env


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def run_exporter(root: Path, *args: str, cache_dir: Path, output_dir: Path | None = None) -> Run:
    """`python -m export_dists_uv ROOT ARGS` in a fresh process, as a user runs the console script."""
    here = Path(__file__).resolve().parent.parent
    core = here.parent / "core"
    env = {**uv_environment(), "PYTHONPATH": os.pathsep.join([str(here), str(core)])}
    command = [sys.executable, "-m", "export_dists_uv", str(root), "--cache-dir", str(cache_dir)]
    if output_dir is not None:
        command += ["--output-dir", str(output_dir)]
    result = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=900)
    return Run(result.returncode, result.stdout, result.stderr)
