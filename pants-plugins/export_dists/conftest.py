"""Fixtures for the RuleRunner tests: a tiny monorepo in a git repository, and ways to export it."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterable, Mapping

import pytest

from pants.backend.python import target_types_rules
from pants.backend.python.dependency_inference import rules as dependency_inference_rules
from pants.backend.python.macros import python_requirements
from pants.backend.python.macros.python_requirements import PythonRequirementsTargetGenerator
from pants.backend.python.target_types import (
    PexBinary,
    PythonRequirementTarget,
    PythonSourcesGeneratorTarget,
    PythonSourceTarget,
    PythonTestsGeneratorTarget,
    PythonTestTarget,
    PythonTestUtilsGeneratorTarget,
)
from pants.core import target_types as core_target_types
from pants.core.target_types import (
    FilesGeneratorTarget,
    FileTarget,
    ResourcesGeneratorTarget,
    ResourceTarget,
)
from pants.core.util_rules import distdir, source_files, system_binaries
from pants.base.specs import RawSpecs
from pants.engine.addresses import Address, Addresses
from pants.engine.internals.parametrize import Parametrize
from pants.engine.rules import QueryRule
from pants.engine.target import DependenciesRequest, Target, Targets
from pants.testutil.rule_runner import RuleRunner
from pants.util.frozendict import FrozenDict

from export_dists import findings, register
from export_dists.dists import DistIdentity, DistIdentityRequest, DistPlan, DistPlanRequest, NamingSettings
from export_dists.export import Export, ExportRequest
from export_dists.findings import DEFAULT_EXAMPLES
from export_dists.subsystem import UnexportableDependencies, VersionScheme
from export_dists.versioning import ExportCommit, ExportCommitRequest

DEFAULT_TEMPLATE = "0.{count}+g{short_sha}"
ARGS = (
    "--source-root-patterns=['/src/python', '/libs']",
    "--python-infer-use-rust-parser",
)
# Not a flag: interpreter constraints given on the command line override every target's own.
ENV = {"PANTS_PYTHON_INTERPRETER_CONSTRAINTS": "['CPython>=3.9,<3.12']"}
ENV_INHERIT = {"PATH", "PYENV_ROOT", "HOME"}
# Commits made with a fixed identity and clock have the same sha on every run and machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Export Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Export Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
FIRST_COMMIT_EPOCH = 1764072000  # 2025-11-25T12:00:00Z


def make_rule_runner(extra_target_types: Iterable[type[Target]] = ()) -> RuleRunner:
    return RuleRunner(
        rules=[
            *register.rules(),
            *target_types_rules.rules(),
            *dependency_inference_rules.rules(),
            *python_requirements.rules(),
            *core_target_types.rules(),
            *source_files.rules(),
            *system_binaries.rules(),
            *distdir.rules(),
            QueryRule(Export, [ExportRequest]),
            QueryRule(DistPlan, [DistPlanRequest]),
            QueryRule(DistIdentity, [DistIdentityRequest]),
            QueryRule(ExportCommit, [ExportCommitRequest]),
            # What `pants dependencies ::` asks, to compare an export's engine work with it.
            QueryRule(Targets, [RawSpecs]),
            QueryRule(Addresses, [DependenciesRequest]),
        ],
        target_types=[
            *register.target_types(),
            PythonSourcesGeneratorTarget,
            PythonSourceTarget,
            PythonTestsGeneratorTarget,
            PythonTestTarget,
            PythonTestUtilsGeneratorTarget,
            PythonRequirementTarget,
            PythonRequirementsTargetGenerator,
            PexBinary,
            FilesGeneratorTarget,
            FileTarget,
            ResourcesGeneratorTarget,
            ResourceTarget,
            *extra_target_types,
        ],
        objects={"parametrize": Parametrize},
    )


class Repo:
    """A monorepo in a RuleRunner's build root, committed to git, and requests against it."""

    def __init__(self, rule_runner: RuleRunner) -> None:
        self.rule_runner = rule_runner
        self.root = rule_runner.build_root
        self.commits = 0
        self.options: tuple[str, ...] = ()
        self.set_options()

    def set_options(self, *args: str) -> None:
        """Options on top of ARGS; also starts a new session, so git is asked afresh."""
        self.options = args
        self.rule_runner.set_options([*ARGS, *args], env=ENV, env_inherit=ENV_INHERIT)

    def new_session(self) -> None:
        self.set_options(*self.options)

    def git(self, *args: str, epoch: int | None = None) -> str:
        env = {**os.environ, **GIT_ENV}
        if epoch is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{epoch} +0000"
        result = subprocess.run(
            ["git", "-C", self.root, *args], env=env, check=True, capture_output=True, text=True
        )
        return result.stdout.strip()

    def write(self, files: Mapping[str, str]) -> None:
        self.rule_runner.write_files(files)

    def commit(self, files: Mapping[str, str] | None = None, message: str = "change") -> str:
        """Write `files`, commit them (git init on the first commit) and return the new sha."""
        if self.commits == 0:
            self.git("init", "-q", "-b", "main")
        if files:
            self.write(files)
        # Only what the test wrote: Pants' own .pants.d stays untracked, as in a real repository.
        tracked = [p for p in os.listdir(self.root) if p not in (".git", ".pants.d", ".pids")]
        self.git("add", "-A", "--", *tracked)
        self.git("commit", "-q", "--allow-empty", "-m", message, epoch=FIRST_COMMIT_EPOCH + 60 * self.commits)
        self.commits += 1
        self.new_session()
        return self.git("rev-parse", "HEAD")

    def settings(
        self,
        *,
        namespace: str = "monorepo",
        strip_source_roots: bool = False,
        include_test_utils: bool = False,
        typed: bool = False,
        skip_paths: tuple[str, ...] = (),
    ) -> NamingSettings:
        return NamingSettings(namespace, strip_source_roots, include_test_utils, typed, skip_paths)

    def plan(self, address: Address, **settings: bool | str) -> DistPlan:
        return self.rule_runner.request(DistPlan, [DistPlanRequest(address, self.settings(**settings))])  # type: ignore[arg-type]

    def export(
        self,
        *roots: Address,
        version_template: str = DEFAULT_TEMPLATE,
        allow_dirty: bool = False,
        pin_from_lockfiles: bool = False,
        unexportable: UnexportableDependencies = UnexportableDependencies.WARN,
        version_scheme: VersionScheme = VersionScheme.CONTENT,
        url_requirement_map: Mapping[str, str] | None = None,
        warning_examples: int = DEFAULT_EXAMPLES,
        reuse_plans: bool = True,
        **settings: bool | str | tuple[str, ...],
    ) -> Export:
        request = ExportRequest(
            roots=tuple(sorted(roots)),
            settings=self.settings(**settings),  # type: ignore[arg-type]
            version_template=version_template,
            allow_dirty=allow_dirty,
            pin_from_lockfiles=pin_from_lockfiles,
            unexportable=unexportable,
            version_scheme=version_scheme,
            url_requirement_map=FrozenDict(url_requirement_map or {}),
            warning_examples=warning_examples,
            reuse_plans=reuse_plans,
        )
        return self.rule_runner.request(Export, [request])


def reset_build_root(rule_runner: RuleRunner) -> None:
    """Empty the build root (keeping Pants' work dir) so tests sharing a RuleRunner see only their files."""
    for entry in os.listdir(rule_runner.build_root):
        if entry == ".pants.d":
            continue
        path = os.path.join(rule_runner.build_root, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    rule_runner.scheduler.invalidate_all_files()


def pytest_configure(config: pytest.Config) -> None:
    # Pants 2.17 pins packaging 21.3, which calls pyparsing's deprecated camelCase API on every
    # requirement it parses; the plugin already silences this outside pytest (export_dists_core.compat).
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:packaging")


@pytest.fixture(autouse=True)
def fresh_findings() -> Iterable[None]:
    # The export says an unchanged warning in one line within a process; each test is a fresh one.
    findings.forget()
    yield


@pytest.fixture(scope="module")
def rule_runner() -> RuleRunner:
    # One per test module: starting a RuleRunner (and its rule graph) is the slow part.
    return make_rule_runner()


@pytest.fixture
def repo(rule_runner: RuleRunner) -> Iterable[Repo]:
    reset_build_root(rule_runner)
    yield Repo(rule_runner)

