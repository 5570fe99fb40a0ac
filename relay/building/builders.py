"""Builders: run the export command for one commit into an output directory, cold (a fresh worktree
per build) or warm (one long-lived worktree per builder, with a Pants daemon kept between builds)."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import shlex
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import AsyncIterator, Callable, Mapping

from relay.building import worktree
from relay.building.memory import available_memory
from relay.errors import RelayError
from relay.git import Git, GitError
from relay.building.processes import (
    Records, alive, kill_group, log_tail_off_loop, run_logged, stop_process,
)
from relay.building.processes import started as started_at
from relay.locks import file_lock, is_locked

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
    """When a warm builder's Pants daemon is replaced: after `max_builds` builds, or when it grows
    beyond `recycle_share` of `max_memory`, by a daemon warmed in the background; in a build only
    when that could not happen in time (twice `max_builds`, or beyond `max_memory`)."""

    max_builds: int = 50
    max_memory: int = 4 * 1024**3
    recycle_share: float = 0.75


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
    on_start: Callable[[int], None] | None = None,
) -> None:
    rendered = command.render(tree, output_dir, sha)
    env = dict(os.environ, RELAY_SHA=sha, RELAY_WORKTREE=str(tree), RELAY_OUTPUT_DIR=str(output_dir), **extra_env)
    code = await run_logged(
        rendered, cwd=tree, env=env, log_path=log_path, timeout=timeout, records=records, owned=owned,
        on_start=on_start,
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


TREES = ("worktree", "worktree-2")  # a warm builder's two worktrees: one serves, one is warmed
# Builds may stop a warm-up this many times; then it runs beside them (slower builds, still warm), so
# builds back to back cannot keep the replacement from ever finishing.
MAX_INTERRUPTIONS = 3
# A replacement daemon warms up to about the serving daemon's size: a warm-up starts only while the
# host (or the relay's cgroup) has that much available, and a tenth more.
WARM_UP_ROOM = 1.1


@dataclass(frozen=True)
class WarmState:
    """A warm builder's state, shared by the relay's worker processes (a file under the build lock)."""

    tree: str = TREES[0]  # the worktree that builds
    inputs: str | None = None  # the build inputs its daemon started with; None: no daemon of ours yet
    builds: int = 0  # builds since that daemon started
    sha: str | None = None  # the commit it built last

    @property
    def standby(self) -> str:
        return TREES[1 - TREES.index(self.tree)]


class WarmBuilder(Builder):
    """Long-lived worktrees under `home` and the Pants daemons their builds start; one build at a time.

    Each build checks the commit out (detached, clean but for Pants' own directories) in the serving
    worktree and runs the export command there, so Pants' daemon keeps its graph between builds and a
    new commit costs about an incremental export.

    A daemon that has built `max_builds` commits or grown beyond `recycle_share` of `max_memory` is
    replaced without a client waiting for it: the other worktree is checked out at the last built
    commit and its export run there (output thrown away) in the background, which starts and warms a
    second daemon; then the two trade places and the old daemon is stopped. A build that arrives
    meanwhile stops the warm-up (the standby daemon keeps what it computed) and runs on the old daemon;
    the warm-up resumes after it (after MAX_INTERRUPTIONS it runs beside the builds). In a build the builder restarts (daemon stopped by its pid, the build
    then cold) only when it must: a commit whose build inputs (BUILDER_INPUTS) differ from those it
    started with, a daemon beyond `max_memory` or twice `max_builds` (the warm-up failed or could not
    finish), a build that timed out, a daemon that died during a build (which is then tried once more).
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
        available: Callable[[], int | None] = available_memory,
    ) -> None:
        self.git = git
        self.command = command
        self.timeout = timeout
        self.home = home
        self.records = records
        self.limits = limits
        self.available = available
        self.postponed: str | None = None  # why the last warm-up did not start, while it has not since
        self._lock: asyncio.Lock | None = None
        self._warm_up_task: asyncio.Task[None] | None = None
        self.restarts = 0  # in a build (its client waited for a cold start)
        self.recycles = 0  # daemons replaced by one warmed in the background

    @property
    def _daemon_env(self) -> dict[str, str]:
        """What every export run of this builder is given: its daemon's memory limit."""
        return {"PANTS_PANTSD_MAX_MEMORY_USAGE": str(self.limits.max_memory)}

    # State shared across worker processes.

    @property
    def _state_file(self) -> Path:
        return self.home / "state.json"

    def state(self) -> WarmState:
        try:
            data = json.loads(self._state_file.read_text())
            state = WarmState(**data)
        except (OSError, ValueError, TypeError):
            return WarmState()
        return state if state.tree in TREES else WarmState()

    def _save(self, state: WarmState) -> None:
        temporary = self.home / f".state.json.{os.getpid()}"
        temporary.write_text(json.dumps(asdict(state)))
        os.replace(temporary, self._state_file)

    @property
    def tree(self) -> Path:
        """The worktree that builds."""
        return self.home / self.state().tree

    @property
    def builds(self) -> int:
        return self.state().builds

    @contextlib.asynccontextmanager
    async def _building(self) -> AsyncIterator[None]:
        """One build (or state change) at a time: in this process and across worker processes."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        self.home.mkdir(parents=True, exist_ok=True)
        async with self._lock, file_lock(self.home / "lock"):
            yield

    # Building.

    async def build(self, sha: str, output_dir: Path, log_path: Path) -> None:
        async with self._building():
            self._interrupt_warm_up()
            state = self.state()
            tree = self.home / state.tree
            inputs = await self._inputs_of(sha)
            reason = self._restart_reason(state, inputs, tree)
            if reason is not None:
                state = await self._restart(state, reason)
            await self._checkout(tree, sha)
            for attempt in (1, 2):
                daemon = pantsd_pid(tree)
                try:
                    await run_export(
                        self.command, tree, output_dir, sha, log_path,
                        timeout=self.timeout, records=self.records, owned=(output_dir,), extra_env=self._daemon_env,
                    )
                except BuildError as e:
                    if e.status == 504:
                        await self._restart(state, "a build timed out")
                        raise
                    if attempt == 1 and daemon is not None and not alive(daemon):
                        state = await self._restart(state, "its Pants daemon died during the build")
                        shutil.rmtree(output_dir, ignore_errors=True)
                        output_dir.mkdir()
                        continue
                    raise
                state = replace(state, inputs=inputs, builds=state.builds + 1, sha=sha)
                if pantsd_pid(tree) is None:
                    state = replace(state, builds=0)  # builds count what a daemon has seen
                self._save(state)
                due = self._recycle_reason(state, tree)
                if due is not None:
                    self._start_warm_up(due)
                return

    def _restart_reason(self, state: WarmState, inputs: str, tree: Path) -> str | None:
        if state.inputs is None:
            return None if pantsd_pid(tree) is None else "a Pants daemon of an earlier relay was running"
        if inputs != state.inputs:
            return "the commit changes the build's own inputs (" + ", ".join(BUILDER_INPUTS[:3]) + ", ...)"
        if state.builds >= 2 * self.limits.max_builds and not self._warming():
            return f"{state.builds} builds since its start, and no replacement could be warmed meanwhile"
        rss = rss_of(tree)
        if rss is not None and rss > self.limits.max_memory:
            return f"its Pants daemon uses {rss // 2**20} MiB"
        return None

    def _recycle_reason(self, state: WarmState, tree: Path) -> str | None:
        """Why the serving daemon should be replaced in the background now, if it should."""
        if pantsd_pid(tree) is None:
            return None  # no daemon (the uv exporter, a command with --no-pantsd): nothing grows
        if state.builds >= self.limits.max_builds:
            return f"{state.builds} builds since its start"
        rss = rss_of(tree)
        if rss is not None and rss > self.limits.recycle_share * self.limits.max_memory:
            return f"its Pants daemon uses {rss // 2**20} MiB"
        return None

    async def _restart(self, state: WarmState, reason: str) -> WarmState:
        """In a build (its client waits): stop the serving daemon; the build starts a new one."""
        logger.info("restarting warm builder %s: %s", self.home, reason)
        await asyncio.get_running_loop().run_in_executor(None, stop_daemon, self.home / state.tree)
        state = WarmState(tree=state.tree)
        self._save(state)
        self.restarts += 1
        self.postponed = None  # a new daemon: nothing to replace yet
        return state

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

    async def _checkout(self, tree: Path, sha: str) -> None:
        if (tree / ".git").is_file():
            try:
                await worktree.checkout(self.git, tree, sha)
                return
            except GitError as e:
                # E.g. an index.lock left by a killed git: start over with a new worktree.
                logger.warning("worktree %s cannot be checked out (%s): adding it anew", tree, e)
                await asyncio.get_running_loop().run_in_executor(None, stop_daemon, tree)
        await worktree.remove(self.git, tree)
        try:
            await worktree.add(self.git, tree, sha)
        except GitError as e:
            raise BuildError(502, f"cannot check out commit {sha}: {e}") from None

    # The replacement daemon, warmed in the background.

    def _start_warm_up(self, reason: str) -> None:
        if self._warm_up_task is None or self._warm_up_task.done():
            self._warm_up_task = asyncio.get_running_loop().create_task(self._warm_up(reason))

    def _warming(self) -> bool:
        """Whether a warm-up runs, in this or another worker process (it holds standby.lock)."""
        if self._warm_up_task is not None and not self._warm_up_task.done():
            return True
        return is_locked(self.home / "standby.lock")

    def _interrupt_warm_up(self) -> None:
        """Called holding the build lock: stop a warm-up's export run (of any worker process), so the
        build has the machine; the warm-up resumes after the build."""
        try:
            pgid, start, interruptible = json.loads((self.home / "standby.pgid").read_text())
        except (OSError, ValueError, TypeError):
            return
        if interruptible and alive(pgid, start):
            (self.home / "standby.interrupted").touch()
            kill_group(pgid)

    async def _warm_up(self, reason: str) -> None:
        try:
            async with file_lock(self.home / "standby.lock", wait=False) as held:
                if held:  # else another worker process is warming one
                    await self._warm_up_held(reason)
        except asyncio.CancelledError:
            raise
        except Exception:  # a warm-up is an optimisation: its failure must not go unnoticed, nor stop builds
            logger.exception("warming a replacement for warm builder %s failed", self.home)

    async def _warm_up_held(self, reason: str) -> None:
        started = time.monotonic()
        logger.info("warm builder %s: warming a replacement daemon in the background: %s", self.home, reason)
        interruptions = 0
        # The commit the standby daemon last finished a run at. Pants' first run after a commit
        # changed files re-validates most of its graph (at 10,000 targets 396 and 446 s against a
        # median of 84 s for later one-leaf builds, docs/benchmarks.md): so the warm-up runs at the
        # last built commit's parent first, then at that commit, and the client's next build is the
        # daemon's second edit, not its first.
        warmed_at: str | None = None
        while True:
            async with self._building():
                state = self.state()
            standby = self.home / state.standby
            loop = asyncio.get_running_loop()
            if state.sha is None or state.inputs is None or self._recycle_reason(state, self.home / state.tree) is None:
                # Restarted in a build meanwhile (new build inputs, say): nothing to replace.
                await loop.run_in_executor(None, stop_daemon, standby)
                return
            short = self._short_of_memory(state, standby)
            if short is not None:
                if self.postponed is None:
                    logger.warning(
                        "warm builder %s: not warming a replacement daemon now: %s. Tried again after the next "
                        "build; meanwhile the serving daemon builds on, and is replaced in a build (its client "
                        "waits for a cold start) once it built twice --builder-max-builds commits or outgrew "
                        "--builder-max-memory. Give the host room for two daemons (docs/deployment.md), or raise "
                        "--builder-max-builds", self.home, short,
                    )
                self.postponed = short
                await loop.run_in_executor(None, stop_daemon, standby)  # what an interrupted warm-up had
                return
            if self.postponed is not None:
                logger.info("warm builder %s: there is room for a replacement daemon again", self.home)
                self.postponed = None
            commit = state.sha if warmed_at is not None else await self._warm_up_start(state.sha, state.inputs)
            await self._checkout(standby, commit)
            output = self.home / "standby-output"
            shutil.rmtree(output, ignore_errors=True)
            output.mkdir()
            (self.home / "standby.interrupted").unlink(missing_ok=True)
            failure: BuildError | None = None
            try:
                await run_export(
                    self.command, standby, output, commit, self.home / "standby.log",
                    timeout=self.timeout, records=self.records, owned=(output,), extra_env=self._daemon_env,
                    on_start=lambda pgid: self._record_warm_up(pgid, interruptible=interruptions < MAX_INTERRUPTIONS),
                )
            except BuildError as e:
                failure = e
            finally:
                (self.home / "standby.pgid").unlink(missing_ok=True)
                shutil.rmtree(output, ignore_errors=True)
            if (self.home / "standby.interrupted").exists():
                interruptions += 1
                logger.info("warm builder %s: a build stopped the warm-up; it resumes after the build", self.home)
                continue  # the loop's first step waits for the build
            if failure is not None:
                logger.warning("warm builder %s: warming a replacement daemon failed; the serving daemon stays: %s",
                               self.home, failure.message)
                await loop.run_in_executor(None, stop_daemon, standby)
                return
            if commit != state.sha:
                warmed_at = commit
                continue  # now the last built commit: the daemon's first edit, in the background
            async with self._building():
                now = self.state()
                if now.tree != state.tree or now.inputs != state.inputs:
                    old = standby  # the serving builder restarted meanwhile: the warmed daemon is not needed
                else:
                    self._save(WarmState(tree=state.standby, inputs=state.inputs, builds=0, sha=state.sha))
                    old = self.home / state.tree
            await loop.run_in_executor(None, stop_daemon, old)
            if old == standby:
                return
            self.recycles += 1
            logger.info(
                "warm builder %s: replaced its Pants daemon by one warmed in the background in %.1f s "
                "(builds that interrupted the warm-up: %d)", self.home, time.monotonic() - started, interruptions,
            )
            return

    async def _warm_up_start(self, sha: str, inputs: str) -> str:
        """Where a warm-up's first run goes: the parent of `sha` when it has the same build inputs
        (a daemon started there is not restarted by the run at `sha`), else `sha` itself."""
        try:
            parent = (await self.git.run("rev-parse", "--verify", "--quiet", f"{sha}^")).strip()
            if parent and await self._inputs_of(parent) == inputs:
                return parent
        except (GitError, BuildError):
            pass  # a root commit, say
        return sha

    def _short_of_memory(self, state: WarmState, standby: Path) -> str | None:
        """Why a replacement daemon would not fit beside the serving one now, or None if it would (or
        if memory cannot be told)."""
        serving = rss_of(self.home / state.tree)
        available = self.available()
        if serving is None or available is None:
            return None
        needed = int(serving * WARM_UP_ROOM) - (rss_of(standby) or 0)  # an interrupted warm-up's daemon has part
        if available >= needed:
            return None
        return (f"{available // 2**20} MiB of memory available, and a replacement grows to about the serving "
                f"daemon's {serving // 2**20} MiB")

    def _record_warm_up(self, pgid: int, *, interruptible: bool) -> None:
        """Make the warm-up's run stoppable by a build; stop it at once if a build already runs (a
        build takes the lock, then reads this file: one of the two sees the other)."""
        (self.home / "standby.pgid").write_text(json.dumps([pgid, started_at(pgid), interruptible]))
        if not interruptible:
            return
        if is_locked(self.home / "lock"):
            (self.home / "standby.interrupted").touch()
            kill_group(pgid)

    # Life cycle.

    def pantsd_pid(self) -> int | None:
        """The pid of the live Pants daemon of the serving worktree, if any."""
        return pantsd_pid(self.tree)

    def rss(self) -> int | None:
        return rss_of(self.tree)

    async def close(self) -> None:
        task, self._warm_up_task = self._warm_up_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.get_running_loop().run_in_executor(None, self.clean_up)

    def clean_up(self) -> None:
        """Stop the daemons of both worktrees (this relay's, or one that died) and forget them."""
        for name in TREES:
            stop_daemon(self.home / name)
        for name in ("state.json", "standby.pgid", "standby.interrupted"):
            (self.home / name).unlink(missing_ok=True)
        shutil.rmtree(self.home / "standby-output", ignore_errors=True)

    def status(self) -> dict[str, object]:
        state = self.state()
        return {
            "kind": self.kind, "builds": state.builds, "restarts": self.restarts, "recycles": self.recycles,
            "rss": rss_of(self.home / state.tree),
            "warming": self._warm_up_task is not None and not self._warm_up_task.done(),
            "warm_up_postponed": self.postponed,
        }


def pantsd_pid(tree: Path) -> int | None:
    """The pid of the live Pants daemon of a worktree, if any."""
    for pid_file in tree.glob(".pids/*/pantsd/pid"):
        try:
            pid = int(pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"pantsd" in command and alive(pid):
            return pid
    return None


def rss_of(tree: Path) -> int | None:
    """The resident memory of a worktree's Pants daemon, if it runs."""
    pid = pantsd_pid(tree)
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stop_daemon(tree: Path) -> None:
    """Stop a worktree's Pants daemon by its pid (blocking: run it off the event loop)."""
    pid = pantsd_pid(tree)
    if pid is not None:
        begun = time.monotonic()
        stop_process(pid)
        logger.info("stopped Pants daemon %d of %s in %.1f s", pid, tree, time.monotonic() - begun)
