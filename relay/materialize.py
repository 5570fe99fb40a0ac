"""Pull mode: build a commit's export on request in a temporary worktree and publish it to the store."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from relay.contract import MANIFEST, ContractError, Export
from relay.refs import Git, GitError, RefError
from relay.store import Store

logger = logging.getLogger("relay.materialize")

# --no-pantsd: a daemon started in a temporary worktree would outlive it.
DEFAULT_EXPORT_COMMAND = "{worktree}/pants --no-pantsd export-dists --export-dists-output-dir={output_dir} ::"
PLACEHOLDERS = ("{worktree}", "{output_dir}", "{sha}")
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class ExportCommand:
    """A shell command template; {worktree}, {output_dir} and {sha} are replaced, shell-quoted."""

    template: str = DEFAULT_EXPORT_COMMAND

    def render(self, worktree: Path, output_dir: Path, sha: str) -> str:
        # Plain replacement, not str.format: the template may hold shell braces such as ${HOME}.
        command = self.template
        for placeholder, value in zip(PLACEHOLDERS, (str(worktree), str(output_dir), sha)):
            command = command.replace(placeholder, shlex.quote(value))
        return command


class MaterializeError(RefError):
    """A build that failed; the message says why and ends with the tail of its log."""


@dataclass(frozen=True)
class Limits:
    max_jobs: int = 1
    timeout_seconds: float = 1800.0


class Materializer:
    """Builds exports on request: one run per commit at a time, a bounded number of runs, each timed."""

    def __init__(
        self,
        git: Git,
        store: Store,
        command: ExportCommand = ExportCommand(),
        limits: Limits = Limits(),
        work_dir: Path | None = None,
    ) -> None:
        self.git = git
        self.store = store
        self.command = command
        self.limits = limits
        self.work_dir = work_dir
        self._jobs: dict[str, asyncio.Task[Export]] = {}
        # Made on first use, inside the running loop (Python 3.9 binds asyncio primitives at creation).
        self._slots: asyncio.Semaphore | None = None
        self.runs = 0

    async def ensure(self, sha: str) -> Export:
        """The export of `sha`, built now unless the store has it; concurrent callers share one run."""
        stored = self.store.exports().get(sha)
        if stored is not None:
            return stored.export
        job = self._jobs.get(sha)
        if job is None:
            job = asyncio.ensure_future(self._run_once(sha))
            self._jobs[sha] = job
            job.add_done_callback(lambda done: self._forget(sha, done))
        # A client that disconnects must not cancel a build others wait for.
        return await asyncio.shield(job)

    def _forget(self, sha: str, job: asyncio.Task[Export]) -> None:
        # A failure is not kept: the next request for the commit tries again.
        if self._jobs.get(sha) is job:
            del self._jobs[sha]
        if not job.cancelled() and job.exception() is not None and not isinstance(job.exception(), RefError):
            logger.error("materializing %s crashed: %r", sha, job.exception())

    @property
    def building(self) -> tuple[str, ...]:
        return tuple(self._jobs)

    async def close(self) -> None:
        """Cancel running builds (their processes are killed and worktrees removed)."""
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    async def _run_once(self, sha: str) -> Export:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.max_jobs)
        with self.store.lease(sha):
            async with self._slots:
                # Other worker processes, and other replicas on one bucket, may be asked for the same
                # commit: the store's build lease lets one build while the others wait for its export.
                async with self.store.build_lease(sha):
                    stored = self.store.exports().get(sha)
                    if stored is not None:  # pushed, or built elsewhere, while this run waited
                        return stored.export
                    return await self._build(sha)

    async def _build(self, sha: str) -> Export:
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix=f"relay-{sha[:12]}-", dir=self.work_dir))
        worktree = scratch / "worktree"
        log_path = scratch / "export.log"
        staging = self.store.staging_dir()
        self.runs += 1
        logger.info("materializing %s in %s", sha, worktree)
        try:
            try:
                await self.git.run("worktree", "add", "--detach", str(worktree), sha)
            except GitError as e:
                raise MaterializeError(502, f"cannot check out commit {sha}: {e}") from None
            command = self.command.render(worktree, staging, sha)
            returncode = await self._run_command(command, worktree, staging, sha, log_path)
            if returncode != 0:
                raise MaterializeError(
                    502,
                    f"building the export of {sha} failed (exit status {returncode}) running: {command}\n"
                    + _tail(log_path),
                )
            built = staging / sha if (staging / sha / MANIFEST).is_file() else staging
            try:
                stored = await self.store.publish(built)
            except ContractError as e:
                raise MaterializeError(
                    502, f"the export command for {sha} wrote no valid export: {e}\n" + _tail(log_path)
                ) from None
            if stored.export.sha != sha or stored.export.dirty:
                raise MaterializeError(502, f"the export command for {sha} wrote commit {stored.export.key}")
            logger.info("materialized %s in %.1f s", sha, time.monotonic() - started)
            return stored.export
        except MaterializeError as e:
            logger.error("materializing %s: %s", sha, e.message)
            raise
        finally:
            await self._remove_worktree(worktree)
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)

    async def _run_command(self, command: str, worktree: Path, staging: Path, sha: str, log_path: Path) -> int:
        env = dict(
            os.environ,
            RELAY_SHA=sha,
            RELAY_WORKTREE=str(worktree),
            RELAY_OUTPUT_DIR=str(staging),
        )
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_shell(
                command,
                cwd=worktree,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group, so a timeout kills the build tool's children too.
                start_new_session=True,
            )
            try:
                return await asyncio.wait_for(process.wait(), self.limits.timeout_seconds)
            except asyncio.TimeoutError:
                _kill_group(process.pid)
                await process.wait()
                raise MaterializeError(
                    504,
                    f"building the export of {sha} timed out after {self.limits.timeout_seconds:.0f} s "
                    f"running: {command}\n" + _tail(log_path),
                ) from None
            except asyncio.CancelledError:
                _kill_group(process.pid)
                await process.wait()
                raise

    async def _remove_worktree(self, worktree: Path) -> None:
        try:
            await self.git.run("worktree", "remove", "--force", str(worktree))
        except GitError:
            pass
        try:
            await self.git.run("worktree", "prune")
        except GitError as e:
            logger.warning("git worktree prune: %s", e)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    tail = lines[-LOG_TAIL_LINES:]
    return "--- last lines of the log ---\n" + "\n".join(tail)
