"""Profiles for the report: py-spy on a cold export and on the relay under load."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from generate_monorepo import Shape, edit_and_commit, generate
from procs import (
    OUT, PANTS, ROOT, BenchError, Server, cache_env, free_port, pants_env, pantsd_pids, remember_pantsd, run_timed,
    stop_pantsd, tail,
)
from profile_summary import summarize, summarize_server
from servers import Corpus

PROFILES = OUT / "profiles"
EXPORT_RATE = 40
SERVER_RATE = 200


def _py_spy() -> str:
    return str(OUT / "venv" / "bin" / "py-spy")


def _bootstrap(flag: str) -> str:
    return subprocess.run([str(PANTS), flag], capture_output=True, text=True, check=True, cwd=ROOT).stdout


def export_profile(targets: int, shape: Shape, log) -> dict[str, object]:
    """py-spy on `python -m pants --no-pantsd export-dists ::`, empty caches (the cold export)."""
    PROFILES.mkdir(parents=True, exist_ok=True)
    repo = OUT / "repos" / f"profile-{targets}"
    shutil.rmtree(repo, ignore_errors=True)
    generate(repo, Shape(**{**vars(shape), "targets": targets}))
    cache = Path(tempfile.mkdtemp(prefix="profile-", dir=OUT))
    env = pants_env(cache_env(cache))
    env.update(line.split("=", 1) for line in _bootstrap("--bootstrap-env").splitlines() if "=" in line)
    python = Path(_bootstrap("--bootstrap-venv").strip()) / "bin" / "python"
    raw = PROFILES / f"export-{targets}.raw"
    argv = [_py_spy(), "record", "-r", str(EXPORT_RATE), "-f", "raw", "-o", str(raw), "--",
            str(python), "-m", "pants", "--no-pantsd", "export-dists", f"--export-dists-output-dir={cache / 'out'}", "::"]
    start = time.perf_counter()
    try:
        result = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0 or not raw.exists():
        raise BenchError(f"py-spy on export-dists failed:\n{tail(result.stdout)}\n{tail(result.stderr)}")
    goal_line = next((l for l in result.stderr.splitlines() if l.startswith("export-dists:")), "")
    log(f"profiled a cold export of {targets} targets ({seconds:.1f} s under py-spy)")
    return {"targets": targets, "seconds": seconds, "goal": goal_line, "summary": summarize(raw, EXPORT_RATE),
            "raw": str(raw.relative_to(ROOT))}


def relay_profile(corpus: Corpus, duration: int, connections: int, log) -> dict[str, object]:
    """py-spy on the relay while wrk requests one project page."""
    PROFILES.mkdir(parents=True, exist_ok=True)
    port = free_port()
    work = OUT / "profiles" / "relay"
    work.mkdir(parents=True, exist_ok=True)
    python = str(OUT / "venv" / "bin" / "python")
    server = Server("relay (profiled)", [python, "-m", "relay", "serve", "--store", str(corpus.store), "--host",
                                         "127.0.0.1", "--port", str(port)],
                    cwd=ROOT, log=work / "relay.log", env={**pants_env(), "PYTHONPATH": str(ROOT)})
    raw = PROFILES / "relay-page.raw"
    try:
        url = f"http://127.0.0.1:{port}/main/simple/{corpus.page_project}/"
        server.wait_http(url)
        spy = subprocess.Popen([_py_spy(), "record", "-r", str(SERVER_RATE), "-f", "raw", "-d", str(duration), "-o",
                                str(raw), "-p", str(server.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        wrk = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                             capture_output=True, text=True, timeout=duration + 60)
        spy.wait(timeout=duration + 60)
    finally:
        server.stop()
    if not raw.exists():
        raise BenchError("py-spy wrote no profile of the relay")
    rps = next((l.split()[-1] for l in wrk.stdout.splitlines() if l.startswith("Requests/sec")), "?")
    log(f"profiled the relay serving a page ({rps} req/s under py-spy)")
    return {"url_path": f"/main/simple/{corpus.page_project}/", "rps_under_profiler": rps,
            "summary": summarize_server(raw, SERVER_RATE), "raw": str(raw.relative_to(ROOT))}


def pantsd_profile(targets: int, shape: Shape, runs: int, log) -> dict[str, object]:
    """py-spy on pantsd during warm runs (nothing changed), then during incremental runs (leaf edited)."""
    PROFILES.mkdir(parents=True, exist_ok=True)
    repo_path = OUT / "repos" / f"profile-pantsd-{targets}"
    shutil.rmtree(repo_path, ignore_errors=True)
    repo = generate(repo_path, Shape(**{**vars(shape), "targets": targets}))
    cache = Path(tempfile.mkdtemp(prefix="profile-pantsd-", dir=OUT))
    env = pants_env(cache_env(cache))
    argv = [str(PANTS), "export-dists", f"--export-dists-output-dir={cache / 'out'}", "::"]
    result: dict[str, object] = {"targets": targets, "runs": runs}
    remember_pantsd(repo.path)
    try:
        run_timed(argv, cwd=repo.path, env=env)  # starts pantsd
        remember_pantsd(repo.path)
        pids = pantsd_pids(repo.path)
        if len(pids) != 1:
            raise BenchError(f"expected one pantsd in {repo.path}, found {pids}")
        for phase in ("warm", "incremental"):
            raw = PROFILES / f"pantsd-{phase}-{targets}.raw"
            spy = subprocess.Popen([_py_spy(), "record", "-r", str(EXPORT_RATE), "-f", "raw", "-o", str(raw),
                                    "-p", str(pids[0])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            seconds, goal = [], ""
            for i in range(runs):
                if phase == "incremental":
                    edit_and_commit(repo.path, repo.leaf_file, f"profile{i}_{time.time_ns()}")
                timed = run_timed(argv, cwd=repo.path, env=env)
                seconds.append(round(timed.seconds, 2))
                goal = next((l for l in timed.output.splitlines() if l.startswith("export-dists:")), goal)
            time.sleep(0.5)
            spy.send_signal(2)  # SIGINT: py-spy writes what it has
            spy.wait(timeout=60)
            if not raw.exists():
                raise BenchError(f"py-spy wrote no profile of pantsd ({phase})")
            result[phase] = {"seconds": seconds, "goal": goal, "summary": summarize(raw, EXPORT_RATE),
                             "raw": str(raw.relative_to(ROOT))}
            log(f"profiled pantsd, {phase} exports of {targets} targets: {seconds} s")
    finally:
        stop_pantsd(repo.path)
        shutil.rmtree(cache, ignore_errors=True)
    return result
