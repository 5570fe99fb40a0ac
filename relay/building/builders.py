"""Builders: run the export command for one commit into an output directory, cold (a fresh worktree
per build) or warm (one long-lived worktree per builder, with a Pants daemon kept between builds)."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import os
import shlex
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from relay.building import worktree
from relay.errors import RelayError
from relay.git import Git, GitError
from relay.building.processes import Records, alive, file_lock, log_tail_off_loop, run_logged, stop_process

logger = logging.getLogger("relay.builder")

# Cold: --no-pantsd, since a daemon started in a temporary worktree would outlive it.
COLD_EXPORT_COMMAND = "{worktree}/pants --no-pantsd export-dists --export-dists-output-dir={output_dir} ::"
# Warm: the daemon stays up between builds of the builder's worktree (stopped by the relay).
WARM_EXPORT_COMMAND = "{worktree}/pants export-dists --export-dists-output-dir={output_dir} ::"
PLACEHOLDERS = ("{worktree}", "{output_dir}", "{sha}")

# Files of a commit that the build tool itself is made of: when any differs from what a warm
# builder started with, the builder restarts (pantsd would mostly notice, but "mostly" is not enough
# for exports that must equal a cold build's). Globs over repository paths.
BUILDER_INPUTS = (
    "pants",
    "pants.toml",
    "pants.*.toml",
    ".pants.rc",
    ".pants.bootstrap",
    "pants-plugins/*",
    "core/*",  # the plugin's build-system-neutral core (export_dists_core), on its pythonpath
    "*.lock",
    ".python-version",
)


@dataclass(frozen=True)
class ExportCommand:
    """A shell command template; {worktree}, {output_dir} and {sha} are replaced, shell-quoted."""

    template: str = COLD_EXPORT_COMMAND

    def render(self, worktree: Path, output_dir: Path, sha: str) -> str:
        # Plain replacement, not str.format: the template may hold shell braces such as ${HOME}.
        command = self.template
        for placeholder, value in zip(PLACEHOLDERS, (str(worktree), str(output_dir), sha)):
            command = command.replace(placeholder, shlex.quote(value))
        return command


class BuildError(RelayError):
    """A build that failed (502) or timed out (504); the message ends with the tail of its log."""


@dataclass(frozen=True)
class WarmLimits:
    """When a warm builder restarts: after `max_builds` builds, or when its daemon outgrows `max_memory`."""

    max_builds: int = 50
    max_memory: int = 4 * 1024**3


class Builder(ABC):
    kind: str

    @abstractmethod
    async def build(self, sha: str, output_dir: Path, log_path: Path) -> None:
        """Write the export of `sha` into `output_dir` (as the export command does), or BuildError."""

    async def close(self) -> None:
        """Stop what the builder keeps running."""

    def clean_up(self) -> None:
        """At start-up: stop what an earlier relay's builder left running."""

    def status(self) -> dict[str, object]:
        return {"kind": self.kind}


async def run_export(
    command: ExportCommand,
    tree: Path,
    output_dir: Path,
    sha: str,
    log_path: Path,
    *,
    timeout: float,
    records: Records,
    owned: tuple[Path, ...],
    extra_env: Mapping[str, str] = {},
) -> None:
    rendered = command.render(tree, output_dir, sha)
    env = dict(os.environ, RELAY_SHA=sha, RELAY_WORKTREE=str(tree), RELAY_OUTPUT_DIR=str(output_dir), **extra_env)
    code = await run_logged(
        rendered, cwd=tree, env=env, log_path=log_path, timeout=timeout, records=records, owned=owned
    )
    if code is None:
        raise BuildError(
            504,
            f"building the export of {sha} timed out after {timeout:.0f} s running: {rendered}\n"
            + await log_tail_off_loop(log_path),
        )
    if code != 0:
        raise BuildError(
            502,
            f"building the export of {sha} failed (exit status {code}) running: {rendered}\n"
            + await log_tail_off_loop(log_path),
        )


class ColdBuilder(Builder):
    """A fresh worktree per build, removed afterwards; nothing is kept between builds."""

    kind = "cold"

    def __init__(self, git: Git, command: ExportCommand, timeout: float, work_dir: Path, records: Records) -> None:
        self.git = git
        self.command = command
        self.timeout = timeout
        self.work_dir = work_dir
        self.records = records

    async def build(self, sha: str, output_dir: Path, log_path: Path) -> None:
        scratch = Path(tempfile.mkdtemp(prefix=f"relay-{sha[:12]}-", dir=self.work_dir))
        tree = scratch / "worktree"
        try:
            try:
                await worktree.add(self.git, tree, sha)
            except GitError as e:
                raise BuildError(502, f"cannot check out commit {sha}: {e}") from None
            await run_export(
                self.command, tree, output_dir, sha, log_path,
                timeout=self.timeout, records=self.records, owned=(scratch, output_dir),
            )
        finally:
            await worktree.remove(self.git, tree)
            shutil.rmtree(scratch, ignore_errors=True)


class WarmBuilder(Builder):
    """One long-lived worktree under `home` and the Pants daemon its builds start; one build at a time.

    Each build checks the commit out (detached, clean but for Pants' own directories) and runs the
    export command there, so Pants' daemon keeps its graph between builds and a new commit costs
    about an incremental export. The builder restarts (daemon stopped by its pid) when a commit's
    build inputs (BUILDER_INPUTS) differ from those it started with, after `max_builds` builds, when
    the daemon outgrows `max_memory`, when a build times out, and when the daemon dies during a build
    (which is then tried once more).
    """

    kind = "warm"

    def __init__(
        self,
        git: Git,
        command: ExportCommand,
        timeout: float,
        home: Path,
        records: Records,
        limits: WarmLimits = WarmLimits(),
    ) -> None:
        self.git = git
        self.command = command
        self.timeout = timeout
        self.home = home
        self.tree = home / "worktree"
        self.records = records
        self.limits = limits
        self._lock: asyncio.Lock | None = None
        self._inputs: str | None = None  # what the daemon started with; None: no daemon of ours yet
        self.builds = 0  # since the last restart
        self.restarts = 0

    async def build(self, sha: str, output_dir: Path, log_path: Path) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        self.home.mkdir(parents=True, exist_ok=True)
        # One build per worktree: in this process (the asyncio lock) and across worker processes.
        async with self._lock, file_lock(self.home / "lock"):
            inputs = await self._inputs_of(sha)
            reason = self._restart_reason(inputs)
            if reason is not None:
                await self.restart(reason)
            await self._checkout(sha)
            self._inputs = inputs
            for attempt in (1, 2):
                daemon = self.pantsd_pid()
                try:
                    await run_export(
                        self.command, self.tree, output_dir, sha, log_path,
                        timeout=self.timeout, records=self.records, owned=(output_dir,),
                        extra_env={"PANTS_PANTSD_MAX_MEMORY_USAGE": str(self.limits.max_memory)},
                    )
                except BuildError as e:
                    if e.status == 504:
                        await self.restart("a build timed out")
                        raise
                    if attempt == 1 and daemon is not None and not alive(daemon):
                        await self.restart("its Pants daemon died during the build")
                        shutil.rmtree(output_dir, ignore_errors=True)
                        output_dir.mkdir()
                        continue
                    raise
                self.builds += 1
                return

    def _restart_reason(self, inputs: str) -> str | None:
        if self._inputs is None:
            return None if self.pantsd_pid() is None else "a Pants daemon of an earlier relay was running"
        if inputs != self._inputs:
            return "the commit changes the build's own inputs (" + ", ".join(BUILDER_INPUTS[:3]) + ", ...)"
        if self.builds >= self.limits.max_builds:
            return f"{self.builds} builds since its start"
        rss = self.rss()
        if rss is not None and rss > self.limits.max_memory:
            return f"its Pants daemon uses {rss // 2**20} MiB"
        return None

    async def _inputs_of(self, sha: str) -> str:
        """A hash of the commit's build inputs and of the command: equal hashes, same builder."""
        try:
            listing = await self.git.run("ls-tree", "-r", "--full-tree", sha)
        except GitError as e:
            raise BuildError(502, f"cannot read commit {sha}: {e}") from None
        digest = hashlib.sha256(self.command.template.encode())
        for line in listing.splitlines():
            path = line.split("\t", 1)[-1]
            if any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], p)
                   for p in BUILDER_INPUTS):
                digest.update(line.encode() + b"\n")
        return digest.hexdigest()

    async def _checkout(self, sha: str) -> None:
        if (self.tree / ".git").is_file():
            try:
                await worktree.checkout(self.git, self.tree, sha)
                return
            except GitError as e:
                # E.g. an index.lock left by a killed git: start over with a new worktree.
                await self.restart(f"its worktree cannot be checked out ({e})")
        await worktree.remove(self.git, self.tree)
        try:
            await worktree.add(self.git, self.tree, sha)
        except GitError as e:
            raise BuildError(502, f"cannot check out commit {sha}: {e}") from None

    def pantsd_pid(self) -> int | None:
        """The pid of the live Pants daemon of the worktree, if any."""
        for pid_file in self.tree.glob(".pids/*/pantsd/pid"):
            try:
                pid = int(pid_file.read_text().strip())
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            if b"pantsd" in command and alive(pid):
                return pid
        return None

    def rss(self) -> int | None:
        pid = self.pantsd_pid()
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    async def restart(self, reason: str) -> None:
        logger.info("restarting warm builder %s: %s", self.home, reason)
        await asyncio.get_running_loop().run_in_executor(None, self._stop_daemon)
        self._inputs = None
        self.builds = 0
        self.restarts += 1

    def _stop_daemon(self) -> None:
        pid = self.pantsd_pid()
        if pid is not None:
            started = time.monotonic()
            stop_process(pid)
            logger.info("stopped Pants daemon %d of %s in %.1f s", pid, self.tree, time.monotonic() - started)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._stop_daemon)
        self._inputs = None

    def clean_up(self) -> None:
        self._stop_daemon()

    def status(self) -> dict[str, object]:
        return {"kind": self.kind, "builds": self.builds, "restarts": self.restarts, "rss": self.rss()}
