"""Pull mode: how long the relay takes to answer for a commit it has never exported."""
from __future__ import annotations

import shutil
import sys
import time
import urllib.request

from procs import OUT, PANTS, ROOT, BenchError, Server, cache_env, free_port, pants_env, summarize

sys.path.insert(0, str(ROOT))
from tests.example_repo import make_example_repo  # noqa: E402

# Like the relay's default, but through this checkout's bootstrap and without pantsd, so no daemon
# outlives a build (each build runs in a new temporary worktree).
EXPORT_COMMAND = f"{PANTS} --no-pantsd export-dists --export-dists-output-dir={{output_dir}} ::"


def _get(url: str, timeout: float) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        response.read()
        if response.status != 200:
            raise BenchError(f"{url} answered {response.status}")
    return time.perf_counter() - start


def run(reps: int, python: str, log) -> dict[str, object]:
    first, second = [], []
    for rep in range(reps):
        work = OUT / "pull" / f"rep{rep}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        repo = make_example_repo(work / "monorepo", commits=2)
        cache = work / "pants-cache"  # empty: the first build is cold
        (work / "tmp").mkdir()
        port = free_port()
        env = pants_env(cache_env(cache))
        env["PYTHONPATH"] = str(ROOT)
        server = Server("relay (pull mode)", [python, "-m", "relay", "serve", "--store", str(work / "store"),
                                              "--repo", str(repo.path), "--host", "127.0.0.1", "--port", str(port),
                                              "--export-command", EXPORT_COMMAND, "--work-dir", str(work / "tmp")],
                        cwd=ROOT, log=work / "relay.log", env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            server.wait_http(f"{base}/-/health")
            first.append(_get(f"{base}/{repo.shas[0]}/simple/", timeout=900))
            second.append(_get(f"{base}/{repo.shas[1]}/simple/", timeout=900))
            log(f"pull mode #{rep + 1}: unseen commit {first[-1]:.1f} s, second commit {second[-1]:.1f} s")
        finally:
            server.stop()
            shutil.rmtree(cache, ignore_errors=True)
    return {"first_commit_s": summarize(first), "second_commit_s": summarize(second), "reps": reps}
