"""A month of main in one store: the relay's start-up, memory and latency over many exports.

`relay_testing.exports.write_history` writes `exports` content-versioned exports of `dists` dists,
one dist changed per commit (as `--follow main` produces), unchanged wheels hard-linked. Smaller
stores are hard-linked copies of its first N exports. Per size, relays are started with `serve
--store DIR` (push mode: `main` comes from the manifests, so `/main/simple/` is a branch index over
every export) and measured from the outside:

- start-up: from the process's start to the first 200 of `/main/simple/<project>/`, polled every
  20 ms; with no catalog (the first start over an existing store: every manifest parsed and
  checked) and with it (every restart after);
- resident memory (VmRSS) after that first page and after the latency sweep;
- latency: one client, one keep-alive connection, `requests` distinct projects of the tip's index
  (`/<sha>/simple/<project>/`), of the branch index (`/main/simple/<project>/`, each rendered over
  every export the first time) and of the tip's wheels, then the same again (rendered pages and
  small files are kept): p50 and p99 of each.

The floor is the relay before the catalog and shared dists (`before`, a git commit of this
repository, run from a `git archive` of it), at the sizes it can afford (it holds every manifest's
every dist: about 2.7 MB per 1,000-dist export).

The object store (`s3_sizes`): the first N exports put into a SeaweedFS bucket (relay_testing's
server) as `relay publish` lays them out (`manifests/<key>.json`, `files/<sha256>`; written by
the bench's own client, many at once, so loading 1.4 GB takes a minute rather than 1,500
publishes), then a replica (`serve --store s3://...`) timed to its first page as above: the relay
before the replica's catalog (`S3_PREVIOUS`, every start reads every manifest), this relay's first
start (no catalog in its work directory, none in the bucket: it lists the header keys `relay publish`
writes beside the manifests, reads the tips before its first page and the rest while serving, records
them and shares its catalog in the bucket), its restart (the catalog: no manifest read), a new
replica (an empty work directory: it starts from the shared catalog), and a first start over the
bucket without its header keys and shared catalog (an earlier relay's: it reads the first bytes of
every manifest); and one listing of `manifests/` timed from the bench's client
(what a replica does every interval).
"""
from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from procs import OUT, ROOT, BenchError, Server, free_port, proc_rss_mb, summarize

sys.path.insert(0, str(ROOT))
from relay.storage.catalog import CATALOG  # noqa: E402
from relay.storage.header_keys import HEADERS, header_key  # noqa: E402
from relay_testing.exports import fake_sha, write_history  # noqa: E402

# The relay before this part's change (shared dists, the catalog): the floor it is measured against.
BEFORE = "ec5cfff"
# The relay with the catalog but a scan that read every export's manifest stamp each second (issue
# 24's first round): the latency and start-up it had, measured in the same run as this one.
PREVIOUS = "af5a839"
# The relay before an S3 replica's catalog (every start GETs and parses every manifest).
S3_PREVIOUS = "45087ab"
# The relay whose first start without a catalog checked every listed file's size before listing
# an export (a stat per file): its first start is measured at the largest size, in the same run.
FIRST_START_BEFORE = "fcc5e2f"
# The first start over a bucket whose manifests carry no header keys (`relay.storage.header_keys`).
NO_HEADER_KEYS = "no header keys (first start over a bucket an earlier relay published)"
# The relay whose first start without a catalog read every manifest before its first page (this part
# measures the one that serves the tips first and reads the rest while serving against it).
READ_ALL_FIRST = "5bdd3ae"


def _store(work: Path, dists: int, exports: int, log: Callable[[str], None]) -> Path:
    """The full store, written once and kept between runs (it takes minutes)."""
    store = work / f"store-{dists}x{exports}"
    done = store / ".bench-complete"
    if not done.exists():
        shutil.rmtree(store, ignore_errors=True)
        started = time.monotonic()
        log(f"month: writing {exports} exports of {dists} dists")
        write_history(store, dists, exports,
                      progress=lambda n: log(f"month: {n} exports written") if n % 250 == 0 else None)
        done.write_text(f"{time.monotonic() - started:.1f}\n")
    return store


def _subset(full: Path, keys: list[str], n: int) -> Path:
    """A store of the first `n` exports, hard-linked (no catalog)."""
    if n == len(keys):
        return full
    store = full.parent / f"{full.name}-first-{n}"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    for key in keys[:n]:
        subprocess.run(["cp", "-al", str(full / key), str(store / key)], check=True)
    return store


def _before(work: Path, commit: str = BEFORE) -> Path:
    """A checkout of the relay at `commit` (only what `python -m relay` needs)."""
    tree = work / f"before-{commit}"
    if not (tree / "relay").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "relay"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _fill_bucket(client: Any, bucket: str, prefix: str, store: Path, keys: list[str]) -> int:
    """Put the exports `keys` of `store` under `prefix` as `relay publish` lays them out (files, each
    manifest's header key, manifests); returns the bytes of their manifests."""
    files: dict[str, Path] = {}
    manifests: list[tuple[str, Path]] = []
    carried: list[tuple[str, bytes]] = []
    for key in keys:
        manifest = store / key / "manifest.json"
        body = manifest.read_bytes()
        for d in json.loads(body)["dists"]:
            files.setdefault(d["sha256"], store / key / d["filename"])
            files.setdefault(d["metadata_sha256"], store / key / (d["filename"] + ".metadata"))
        manifests.append((f"{prefix}manifests/{key}.json", manifest))
        found = header_key(key, body)
        if found is not None:
            carried.append((f"{prefix}{HEADERS}{found[0]}", found[1]))

    def put(item: tuple[str, Path]) -> int:
        body = item[1].read_bytes()
        client.put_object(Bucket=bucket, Key=item[0], Body=body)
        return len(body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, [(f"{prefix}files/{sha256}", path) for sha256, path in files.items()]))
        list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), carried))
        return sum(pool.map(put, manifests))  # manifests last, as a publish writes them


def _object_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """The keys of the objects under `prefix`."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", ())]


def _remove(client: Any, bucket: str, prefix: str) -> None:
    """Remove every object under `prefix`."""
    for key in _object_keys(client, bucket, prefix):
        client.delete_object(Bucket=bucket, Key=key)


def _ranged_floor(client: Any, bucket: str, prefix: str) -> float:
    """`_ranged_reads_alone` of every manifest under `prefix` as listed now, best of 3."""
    manifests = _object_keys(client, bucket, f"{prefix}manifests/")
    return min(_ranged_reads_alone(client, bucket, manifests) for _ in range(3))


def _ranged_reads_alone(client: Any, bucket: str, object_keys: list[str]) -> float:
    """Seconds for the store to answer a 4 KB ranged GET of each object, 32 at once, from a plain
    aiohttp client with the URLs presigned before the clock starts: the floor of a first start's
    header reads, whatever the relay does around them."""
    import asyncio

    import aiohttp

    urls = [client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k}, ExpiresIn=600)
            for k in object_keys]

    async def read_all() -> float:
        slots = asyncio.Semaphore(32)
        async with aiohttp.ClientSession() as session:
            async def one(url: str) -> None:
                async with slots, session.get(url, headers={"Range": "bytes=0-4095"}) as response:
                    if response.status != 206:
                        raise BenchError(f"a ranged read answered {response.status}")
                    await response.read()

            started = time.perf_counter()
            await asyncio.gather(*(one(url) for url in urls))
            return time.perf_counter() - started

    return asyncio.run(read_all())


def _s3_rows(full: Path, keys: list[str], sizes: tuple[int, ...], work: Path,
             log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Per size: a replica's first page over a bucket of that many manifests, and one listing."""
    import botocore.config  # comes with aiobotocore
    import botocore.session
    from relay_testing.seaweedfs import SeaweedFS

    bucket = "month"
    previous = _before(work, S3_PREVIOUS)
    data = work / "seaweedfs" / "data"
    shutil.rmtree(data.parent, ignore_errors=True)
    weed = SeaweedFS(data)
    weed.start()
    rows: list[dict[str, Any]] = []
    try:
        env = {**weed.env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=weed.endpoint, region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            config=botocore.config.Config(max_pool_connections=32),
        )
        client.create_bucket(Bucket=bucket)
        for n in sizes:
            prefix = f"m{n}/"
            started = time.monotonic()
            manifest_bytes = _fill_bucket(client, bucket, prefix, full, keys[:n])
            log(f"month: {n} exports put in the bucket in {time.monotonic() - started:.0f} s")
            listings = []
            for _ in range(3):
                started = time.perf_counter()
                pages = 0
                for _page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}manifests/"):
                    pages += 1
                listings.append(time.perf_counter() - started)
            ranged_alone = _ranged_floor(client, bucket, prefix)
            log(f"month: {n} ranged reads of the manifests' first 4 KB alone (plain aiohttp, best of 3): "
                f"{ranged_alone:.2f} s")
            first_path = "/main/simple/monorepo-gen-d00000/"
            tip_manifest = json.loads((full / keys[n - 1] / "manifest.json").read_text())
            tip_versions = {d["project"]: d["version"] for d in tip_manifest["dists"]}
            # The replica's default work directory (its catalog) is under TMPDIR: empty at the first
            # start, and for the new replica, which starts from the catalog the first one shared.
            tmp = work / f"s3-tmp-{n}"
            variants = [(f"previous ({S3_PREVIOUS})", previous, True), ("no catalog (first start)", ROOT, True),
                        ("catalog (restart)", ROOT, False), ("new replica (catalog shared in the bucket)", ROOT, True),
                        (NO_HEADER_KEYS, ROOT, True)]
            for variant, code, empty_work in variants:
                if variant == NO_HEADER_KEYS:
                    # A bucket an earlier relay published: no header keys, and no catalog shared. The
                    # floor again, as the store answers after those removals.
                    _remove(client, bucket, f"{prefix}{HEADERS}")
                    _remove(client, bucket, f"{prefix}catalog/")
                    ranged_alone = _ranged_floor(client, bucket, prefix)
                    log(f"month: {n} ranged reads of the manifests' first 4 KB alone again: {ranged_alone:.2f} s")
                if empty_work:
                    shutil.rmtree(tmp, ignore_errors=True)
                    tmp.mkdir()
                name = f"relay-{n}-s3-{'-'.join(variant.split()[:2])}"
                log(f"month: {n} exports, S3 replica, {variant}: starting")
                load = os.getloadavg()[0]
                started = time.monotonic()
                server, port, startup = _serve(name, code, f"s3://{bucket}/{prefix}", work, first_path, timeout=1800,
                                               env={**env, "TMPDIR": str(tmp)})
                try:
                    rss = proc_rss_mb(server.pid)
                    tip = keys[n - 1]
                    shown = _first_page_version(port, first_path)
                    if shown != tip_versions["monorepo-gen-d00000"]:
                        raise BenchError(f"S3 {variant}: the first page's newest version is {shown}, the tip's "
                                         f"is {tip_versions['monorepo-gen-d00000']}")
                    listed_s, while_reading = _while_reading(port, started, tip, ["monorepo-gen-d00000"], timeout=1800)
                    latency = _sweep(port, tip, ["monorepo-gen-d00000"] * 20, [], routes=("tip index page",))
                finally:
                    server.stop()
                during = "" if while_reading is None else (
                    f"; tip pages meanwhile p50 {while_reading['p50_ms']:.1f} ms, p99 {while_reading['p99_ms']:.1f} ms")
                log(f"month: {n} exports, S3 replica, {variant}: first page after {startup:.2f} s (the tip's), all "
                    f"listed after {listed_s:.2f} s{during}, RSS {rss['rss']:.0f} MB; "
                    f"a listing of manifests/ {min(listings) * 1000:.0f} ms in {pages} LIST request(s)")
                rows.append({"exports": n, "relay": variant, "startup_s": startup, "load": load,
                             "all_listed_s": listed_s, "while_reading": while_reading,
                             "rss_first_page_mb": rss["rss"], "manifest_bytes": manifest_bytes, "list_pages": pages,
                             "list_s": min(listings), "latency": latency, "ranged_reads_alone_s": ranged_alone})
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        weed.stop()
        shutil.rmtree(data.parent, ignore_errors=True)
    return rows


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn.request("GET", path, headers={"Accept": "text/html"})
    response = conn.getresponse()
    response.read()
    return response.status, time.perf_counter() - start


def _serve(name: str, code: Path, store: Path | str, work: Path, first_path: str,
           timeout: float, env: dict[str, str] | None = None) -> tuple[Server, int, float]:
    port = free_port()
    argv = [sys.executable, "-m", "relay", "serve", "--store", str(store), "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log"]
    log_file = work / f"{name}.log"
    log_file.unlink(missing_ok=True)
    started = time.monotonic()
    server = Server(name, argv, cwd=code, log=log_file,
                    env={"PYTHONPATH": str(code), "PATH": os.environ["PATH"], **(env or {})})
    while True:
        if server.process.poll() is not None:
            raise BenchError(f"{name} exited: {log_file.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            status, _ = _get(conn, first_path)
            conn.close()
            if status == 200:
                return server, port, time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            server.stop()
            raise BenchError(f"{name} served no page within {timeout} s")
        time.sleep(0.02)


def _first_page_version(port: int, path: str) -> str:
    """The newest version a branch page lists (PEP 691 JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return str(body["versions"][-1])


def _while_reading(port: int, started: float, tip: str, projects: list[str],
                   timeout: float) -> tuple[float, dict[str, Any] | None]:
    """Until `/-/health` says every export is listed: the time since the process started, and the
    latency of the tip's pages asked meanwhile (one client, the projects in turn; None if it was
    listed at once). A relay without `reading` in its health (the relays before) listed all first."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times: list[float] = []
    i = 0
    while True:
        conn.request("GET", "/-/health")
        reading = json.loads(conn.getresponse().read()).get("reading", 0)
        if not reading:
            break
        if time.monotonic() - started > timeout:
            raise BenchError(f"still reading {reading} manifests after {timeout} s")
        status, seconds = _get(conn, f"/{tip}/simple/{projects[i % len(projects)]}/")
        if status != 200:
            raise BenchError(f"tip page while reading: {status}")
        times.append(seconds * 1000)
        i += 1
    conn.close()
    listed = time.monotonic() - started
    if not times:
        return listed, None
    times.sort()
    return listed, {"p50_ms": times[len(times) // 2], "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
                    "summary": summarize(times)}


def _sweep(port: int, tip: str, projects: list[str], wheels: list[str],
           routes: tuple[str, ...] = ("tip index page", "branch index page", "wheel")) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    paths = {
        "tip index page": [f"/{tip}/simple/{p}/" for p in projects],
        "branch index page": [f"/main/simple/{p}/" for p in projects],
        "wheel": [f"/{tip}/{w}" for w in wheels],
    }
    result: dict[str, Any] = {}
    for route in routes:
        result.update(_timed(conn, route, paths[route]))
    conn.close()
    return result


def _timed(conn: http.client.HTTPConnection, route: str, paths: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for round_name in ("first", "again"):
        times = []
        for path in paths:
            status, seconds = _get(conn, path)
            if status != 200:
                raise BenchError(f"GET {path}: {status}")
            times.append(seconds * 1000)
        times.sort()
        result[f"{route}, {round_name}"] = {
            "p50_ms": times[len(times) // 2], "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
            "summary": summarize(times),
        }
    return result


def run(dists: int, sizes: tuple[int, ...], before_sizes: tuple[int, ...], requests: int,
        log: Callable[[str], None], s3_sizes: tuple[int, ...] = (),
        previous_sizes: tuple[int, ...] = ()) -> dict[str, Any]:
    work = OUT / "month"
    work.mkdir(parents=True, exist_ok=True)
    full = _store(work, dists, max(sizes), log)
    keys = [fake_sha(n) for n in range(1, max(sizes) + 1)]  # write_history's commits, oldest first
    before = _before(work)
    previous = _before(work, PREVIOUS) if previous_sizes else None
    first_start_before = _before(work, FIRST_START_BEFORE)
    read_all_first = _before(work, READ_ALL_FIRST)
    rng = random.Random(24)
    rows: list[dict[str, Any]] = []
    for n in sizes:
        store = _subset(full, keys, n)
        tip = keys[n - 1]
        tip_files = sorted(p.name for p in (store / tip).iterdir() if p.name.endswith(".whl"))
        wheels = rng.sample(tip_files, min(requests, len(tip_files)))
        projects = sorted({w.split("-", 1)[0].replace("_", "-") for w in wheels})
        first_path = f"/main/simple/{projects[0]}/"
        tip_manifest = json.loads((store / tip / "manifest.json").read_text())
        tip_versions = {d["project"]: d["version"] for d in tip_manifest["dists"]}
        store_bytes = sum(f.stat().st_size for f in (store / tip).iterdir() if f.is_file())
        variants = [("no catalog (first start)", ROOT, True), ("catalog (restart)", ROOT, False)]
        if n == max(sizes):
            variants.insert(0, (f"first start before ({FIRST_START_BEFORE})", first_start_before, True))
            variants.insert(1, (f"first start reading all first ({READ_ALL_FIRST})", read_all_first, True))
        if n in before_sizes:
            variants.append((f"before ({BEFORE})", before, False))
        if previous is not None and n in previous_sizes:
            variants.append((f"previous (catalog, {PREVIOUS})", previous, False))
        for variant, code, drop_catalog in variants:
            if drop_catalog:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    Path(f"{store / CATALOG}{suffix}").unlink(missing_ok=True)
            name = f"relay-{n}-{variant.split()[0]}-{variant.split()[-1].strip('()')}"
            log(f"month: {n} exports, {variant}: starting")
            load = os.getloadavg()[0]
            started = time.monotonic()
            server, port, startup = _serve(name, code, store, work, first_path, timeout=1800)
            try:
                rss_first = proc_rss_mb(server.pid)
                # The first page must be the tip's: a relay serving before it read everything must
                # still serve the branch at its tip.
                shown = _first_page_version(port, first_path)
                if shown != tip_versions[projects[0]]:
                    raise BenchError(f"{variant}: the first page's newest version is {shown}, "
                                     f"the tip's is {tip_versions[projects[0]]}")
                listed_s, while_reading = _while_reading(port, started, tip, projects, timeout=1800)
                latency = _sweep(port, tip, projects, wheels)
                rss_after = proc_rss_mb(server.pid)
            finally:
                server.stop()
            row = {"exports": n, "dists": dists, "relay": variant, "startup_s": startup, "load": load,
                   "all_listed_s": listed_s, "while_reading": while_reading,
                   "rss_first_page_mb": rss_first["rss"], "rss_after_mb": rss_after["rss"],
                   "peak_rss_mb": rss_after["peak"], "latency": latency, "export_bytes": store_bytes}
            rows.append(row)
            during = "" if while_reading is None else (
                f"; tip pages meanwhile p50 {while_reading['p50_ms']:.1f} ms, p99 {while_reading['p99_ms']:.1f} ms")
            log(f"month: {n} exports, {variant}: first page after {startup:.2f} s (the tip's), all listed after "
                f"{listed_s:.2f} s{during}, RSS {rss_first['rss']:.0f} MB, "
                f"{rss_after['rss']:.0f} MB after {len(projects)} projects x 3 routes x 2")
        if store != full:
            shutil.rmtree(store, ignore_errors=True)
    catalog_bytes = (full / CATALOG).stat().st_size if (full / CATALOG).exists() else None
    s3_rows = _s3_rows(full, keys, s3_sizes, work, log) if s3_sizes else []
    return {"dists": dists, "sizes": list(sizes), "before_sizes": list(before_sizes), "requests": requests,
            "s3_sizes": list(s3_sizes), "s3_rows": s3_rows, "s3_previous": S3_PREVIOUS, "previous": PREVIOUS,
            "previous_sizes": list(previous_sizes),
            "before": BEFORE, "catalog_bytes": catalog_bytes,
            "write_seconds": float((full / ".bench-complete").read_text()), "rows": rows}


def section(payload: dict[str, Any], fmt: Callable[..., str], table: Callable[..., str]) -> list[str]:
    d = payload["data"]
    header = ["exports", "relay", "first page (s)", "all listed (s)", "tip page while reading p50 / p99 (ms)",
              "RSS after it (MB)", "RSS after the sweep (MB)",
              "tip page p50 / p99 (ms)", "branch page first p50 / p99 (ms)", "branch page again p50 / p99 (ms)",
              "wheel p50 / p99 (ms)"]

    def lat(row: dict[str, Any], key: str) -> str:
        entry = row["latency"][key]
        return f"{entry['p50_ms']:.1f} / {entry['p99_ms']:.1f}"

    rows = [[str(r["exports"]), r["relay"] + (f" (load {r['load']:.1f})" if "load" in r else ""),
             f"{r['startup_s']:.2f}", f"{r['all_listed_s']:.2f}" if "all_listed_s" in r else "n/a",
             "n/a" if not r.get("while_reading") else
             f"{r['while_reading']['p50_ms']:.1f} / {r['while_reading']['p99_ms']:.1f}",
             f"{r['rss_first_page_mb']:.0f}",
             f"{r['rss_after_mb']:.0f}", lat(r, "tip index page, again"), lat(r, "branch index page, first"),
             lat(r, "branch index page, again"), lat(r, "wheel, again")] for r in d["rows"]]
    catalog = f"{d['catalog_bytes'] / 1e6:.1f} MB" if d.get("catalog_bytes") else "n/a"
    loads = [r["load"] for r in d["rows"] + d.get("s3_rows", []) if "load" in r]
    previous = (f" `previous` is the relay with the catalog whose scan read every export's manifest stamp each "
                f"second (`{d['previous']}`), over the same catalog." if d.get("previous_sizes") else "")
    load = f" Load average (1 min) when each relay started: {min(loads):.1f}-{max(loads):.1f} on 2 cores." if loads else ""
    s3 = []
    if d.get("s3_rows"):
        s3 = [
            "The object store" + (f" (measured {d['s3_started']}, by `month_bench._s3_rows` alone)" if d.get("s3_started") else "")
            + ": a replica (`serve --store s3://...`, SeaweedFS on 127.0.0.1) over the first N "
            "exports, from the process's start to its first branch page: the relay before the replica's catalog "
            f"(`{d.get('s3_previous', S3_PREVIOUS)}`: every start reads every manifest), this relay's first start "
            "(no catalog in its work directory nor in the bucket: it lists the manifests' header keys, which the bucket "
            "holds as `relay publish` writes them, serves the tips and reads the rest while serving), its restart (the catalog: only new or changed "
            "manifests are read), a new replica (an empty work directory: it starts from the catalog the first "
            "one shared in the bucket, where there is one), and a first start over the bucket with its header keys "
            "and shared catalog removed (as an earlier relay's `relay publish` left it: the first bytes of every "
            "manifest are read, one ranged GET each); one listing of `manifests/` from the "
            "bench's client (what a replica repeats every `listing_interval`: 5 s up to 1,000 manifests, then "
            "one LIST page a second on average); a tip page again after the first; and the floor of a first "
            "start's header reads: the store answering one 4 KB ranged GET per manifest, 32 at once, to a plain "
            "aiohttp client with presigned URLs (best of 3, before the relays start).",
            "",
            table(["exports", "relay", "manifests (MB)", "first page (s)", "all listed (s)",
                   "tip page while reading p50 / p99 (ms)", "RSS after it (MB)", "listing: LIST requests",
                   "listing (ms)", "tip page again p50 (ms)", "ranged GETs alone (s)", "load"],
                  [[str(r["exports"]), r.get("relay", "n/a"), f"{r['manifest_bytes'] / 1e6:.0f}", f"{r['startup_s']:.2f}",
                    f"{r['all_listed_s']:.2f}" if "all_listed_s" in r else "n/a",
                    "n/a" if not r.get("while_reading") else
                    f"{r['while_reading']['p50_ms']:.1f} / {r['while_reading']['p99_ms']:.1f}",
                    f"{r['rss_first_page_mb']:.0f}", str(r["list_pages"]), f"{r['list_s'] * 1000:.0f}",
                    f"{r['latency']['tip index page, again']['p50_ms']:.1f}",
                    f"{r['ranged_reads_alone_s']:.2f}" if "ranged_reads_alone_s" in r else "n/a", f"{r['load']:.1f}"]
                   for r in d["s3_rows"]]),
            "",
        ]
    return [
        "## A month of main in one store",
        "",
        f"Started {payload['started']}. `bench/month_bench.py`: {max(d['sizes'])} content-versioned exports of "
        f"{d['dists']} dists (`relay_testing.exports.write_history`: one dist changed per commit, unchanged "
        f"wheels hard-linked; written in {d['write_seconds']:.0f} s), the smaller stores hard-linked copies of "
        "the first N. One relay at a time, `serve --store DIR` (push mode: `main` from the manifests, so "
        "`/main/simple/<project>/` lists the project over every export). First page: from the process's start "
        "to the first 200 of a branch page (polled every 20 ms), checked to list the tip's version. All listed: "
        "until `/-/health` counts no manifest still being read (a first start serves the tips first and reads "
        "the rest while serving), with the tip's pages asked meanwhile by one client. Latency (after that): one keep-alive client, "
        f"{d['requests']} projects of the tip's index, of the branch index (rendered over every export the "
        "first time) and their wheels, then the same again. The floor is the relay before the catalog and "
        f"shared dists (`{d['before']}`), at the sizes it can afford. The catalog at "
        f"{max(d['sizes'])} exports: {catalog}.{previous}{load}",
        "",
        table(header, rows),
        "",
        *s3,
    ]


def targets(d: dict[str, Any]) -> list[list[str]]:
    """Issue 24's targets for the relay, against the floor measured in the same run."""
    out: list[list[str]] = []

    def add(target: str, measured: str, met: bool) -> None:
        out.append([target, measured, "**met**" if met else "**missed**"])

    n = max(d["sizes"])
    rows = [r for r in d["rows"] if r["exports"] == n]
    restart = next((r for r in rows if r["relay"].startswith("catalog")), None)
    first = next((r for r in rows if r["relay"].startswith("no catalog")), None)
    if restart is None or first is None:
        return out
    worst_rss = max(r["rss_after_mb"] for r in (restart, first))
    add(f"relay over {n:,} exports of {d['dists']:,} dists (one changed per export): resident memory <= 300 MB",
        f"{restart['rss_after_mb']:.0f} MB after a restart, {first['rss_after_mb']:.0f} MB after a first start "
        "(after the latency sweep)", worst_rss <= 300)
    read_all = next((r for r in rows if r["relay"].startswith("first start reading all first")), None)
    before_text = "" if read_all is None else (
        f"; the relay that read every manifest before serving: {read_all['startup_s']:.1f} s, same run")
    during = "" if not first.get("while_reading") else (
        f", the tip's pages meanwhile p50 {first['while_reading']['p50_ms']:.1f} ms, "
        f"p99 {first['while_reading']['p99_ms']:.0f} ms")
    listed = "" if "all_listed_s" not in first else f"; every export listed after {first['all_listed_s']:.1f} s{during}"
    add(f"relay over {n:,} exports: start-up (first page served) <= 3 s",
        f"{restart['startup_s']:.2f} s with the catalog (every restart); {first['startup_s']:.2f} s on a first start "
        f"(no catalog: the branch at its tip, the rest read while serving{listed}{before_text})",
        max(restart["startup_s"], first["startup_s"]) <= 3)
    floor_n = max(d["before_sizes"], default=None)
    floor = next((r for r in d["rows"] if r["exports"] == floor_n and r["relay"].startswith("before")), None)
    if floor is not None:
        keys = ("tip index page, again", "wheel, again")
        mine = [restart["latency"][k]["p50_ms"] for k in keys]
        theirs = [floor["latency"][k]["p50_ms"] for k in keys]
        add(f"relay over {n:,} exports: page and file latency as today (the relay before, {floor_n} exports, "
            "same run)",
            f"p50 page {mine[0]:.1f} ms vs {theirs[0]:.1f} ms, wheel {mine[1]:.1f} ms vs {theirs[1]:.1f} ms",
            all(m <= max(1.25 * t, t + 1.0) for m, t in zip(mine, theirs)))
    s3_n = max((r["exports"] for r in d.get("s3_rows", [])), default=None)
    s3_rows = [r for r in d.get("s3_rows", []) if r["exports"] == s3_n]
    s3_at = {word: next((r for r in s3_rows if r.get("relay", "no catalog").startswith(word)), None)
             for word in ("no catalog", "catalog", "new", "no header keys")}
    s3 = s3_at["no catalog"]
    if s3 is not None:
        pages = s3["list_pages"]
        restarted = s3_at.get("catalog")
        restart = "" if restarted is None else (
            f"; a restart's first page after {restarted['startup_s']:.1f} s (its catalog: no manifest read)")
        first_listed = "" if "all_listed_s" not in s3 else f", all listed after {s3['all_listed_s']:.0f} s"
        seeded = s3_at.get("new")
        shared = "" if seeded is None else (
            f"; a new replica's once another shared its catalog in the bucket: {seeded['startup_s']:.1f} s")
        unkeyed = s3_at["no header keys"]
        add(f"object store, {s3['exports']:,} manifests: replicas do not list and parse every manifest every 5 s "
            "(listing cost said and bounded)",
            f"a listing is {pages} LIST request(s) ({s3['list_s'] * 1000:.0f} ms), one per 1,000 manifests, made every "
            f"max(5 s, {pages} s): at most one LIST a second on average; only new or changed manifests (by ETag) "
            f"are read. The first replica's first page after {s3['startup_s']:.1f} s (the tips first; it reads "
            f"every manifest once{first_listed}){restart}{shared}",
            True)
        starts = [r for r in (s3, restarted, seeded) if r is not None]
        during = "" if not s3.get("while_reading") else (
            f"; the tip's pages meanwhile p50 {s3['while_reading']['p50_ms']:.1f} ms, "
            f"p99 {s3['while_reading']['p99_ms']:.0f} ms")
        alone = "" if unkeyed is None or "ranged_reads_alone_s" not in unkeyed else (
            f"; the store alone answers those {unkeyed['exports']:,} ranged GETs in "
            f"{unkeyed['ranged_reads_alone_s']:.2f} s, to a plain client with presigned URLs, right before")
        older = "" if unkeyed is None else (
            f". Over a bucket an earlier relay published (no header keys), not in this row: "
            f"{unkeyed['startup_s']:.2f} s, one ranged GET per manifest for its header{alone}")
        add(f"object store, {s3['exports']:,} manifests: start-up (first page served) <= 3 s, as for a directory",
            "; ".join(f"{r.get('relay', 'no catalog')}: {r['startup_s']:.2f} s" for r in starts)
            + f" (the first replica over a bucket `relay publish` filled: one listing of the header keys, then "
            f"the tips{during}){older}",
            all(r["startup_s"] <= 3 for r in starts))
    return out
