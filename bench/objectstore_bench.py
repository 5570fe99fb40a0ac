"""Relays over an object store (SeaweedFS on 127.0.0.1) vs over a directory: load, a cold page after a
new export, and `relay publish` of a 1,000-dist export."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import serve_bench
from procs import OUT, ROOT, BenchError, Server, free_port, summarize
from servers import Index

sys.path.insert(0, str(ROOT))
from relay_testing.seaweedfs import SeaweedFS  # noqa: E402
from relay_testing.exports import DistSpec, fake_sha, write_export  # noqa: E402

BUCKET = "bench"
PAGE_PROJECT = "monorepo-chain-a"


def _relay(name: str, store: str, sha: str, wheel: str, work: Path, env: dict[str, str], *extra: str) -> Index:
    port = free_port()
    argv = [sys.executable, "-m", "relay", "serve", "--store", store, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", *extra]
    slug = "".join(c if c.isalnum() else "-" for c in name)
    server = Server(name, argv, cwd=ROOT, log=work / f"{slug}.log", env={**env, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/-/health")
    return Index(name=name, server=server, simple_url=f"{base}/main/simple/",
                 page_url=f"{base}/main/simple/{PAGE_PROJECT}/", wheel_url=f"{base}/{sha}/{wheel}")


def _publish(directory: Path, store: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "relay", "publish", str(directory), "--store", store],
                            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"relay publish {directory} --store {store} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def _first_answer(url: str) -> float:
    """Seconds until `url` first answers 200 (polled every 10 ms, for at most 60 s)."""
    start = time.perf_counter()
    for _ in range(6000):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                response.read()
                return time.perf_counter() - start
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise BenchError(f"{url} answered {e.code}") from None
        time.sleep(0.01)
    raise BenchError(f"{url} did not appear within 60 s")


LEAF_EXPORTS = 11


def _bucket_bytes(client: object, prefix: str) -> tuple[int, int]:
    """Objects and bytes under a prefix of the bench bucket (every page of the listing)."""
    count = total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):  # type: ignore[attr-defined]
        for item in page.get("Contents", []):
            count += 1
            total += int(item["Size"])
    return count, total


def _tree_bytes(top: Path) -> int:
    """Bytes under a directory, each inode once (the disk store hard-links unchanged files)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in top.rglob("*"):
        st = path.lstat()
        if path.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _one_leaf_series(exports: Path, work: Path, env: dict[str, str], weed: SeaweedFS, n: int, log) -> dict[str, object]:
    """LEAF_EXPORTS content-versioned exports of n dists, one leaf changed per export (as commits to one
    leaf give with versions by content): each published to a fresh prefix of the bucket and a fresh
    directory store; the publish times after the first, and the bytes each store holds at the end."""
    import botocore.session  # comes with aiobotocore

    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=weed.endpoint, region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    specs = [DistSpec(f"monorepo.leaf.d{k:04d}") for k in range(n)]
    base = (fake_sha(7000), 1)
    s3, disk = f"s3://{BUCKET}/leaf", work / "leaf-disk"
    seconds: dict[str, list[float]] = {"S3 store": [], "disk store": []}
    export_bytes = 0
    for i in range(LEAF_EXPORTS):
        sha = fake_sha(7000 + i)
        # Export i: every dist at the base commit but the leaf d0000, which moved at each commit.
        origins = {spec.name: base for spec in specs[1:]}
        origins[specs[0].name] = (sha, 1 + i)
        export = write_export(exports, sha, 1 + i, specs, branches=(), origins=origins)
        export_bytes = sum(d.size + d.metadata_size for d in export.dists)
        for label, store in (("S3 store", s3), ("disk store", str(disk))):
            took = _publish(exports / export.key, store, env)
            if i:
                seconds[label].append(took)
    objects, bucket = _bucket_bytes(client, "leaf/")
    on_disk = _tree_bytes(disk)
    log(f"{LEAF_EXPORTS} one-leaf exports of {n} dists: bucket {bucket / 1e6:.1f} MB in {objects} objects, "
        f"disk store {on_disk / 1e6:.1f} MB; one-leaf publish S3 {summarize(seconds['S3 store'])['median']:.2f} s, "
        f"disk {summarize(seconds['disk store'])['median']:.2f} s")
    return {"exports": LEAF_EXPORTS, "dists": n, "export_bytes": export_bytes, "bucket_bytes": bucket,
            "bucket_objects": objects, "disk_bytes": on_disk,
            "publish_s": {label: summarize(v) for label, v in seconds.items()}}


def run(load: serve_bench.LoadSettings, reps: int, publish_dists: int, log) -> dict[str, object]:
    work = OUT / "objectstore"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    weed = SeaweedFS(work / "seaweedfs" / "data")
    weed.start()
    indexes: list[Index] = []
    try:
        env = {**os.environ, **weed.env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        import botocore.session  # comes with aiobotocore

        botocore.session.get_session().create_client(
            "s3", endpoint_url=weed.endpoint, region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=BUCKET)
        s3 = f"s3://{BUCKET}/relay"
        disk = str(work / "disk")
        exports = work / "exports"
        export = write_export(exports, fake_sha(1), 1)
        for store in (disk, s3):
            _publish(exports / export.key, store, env)
        dist = export.dist(PAGE_PROJECT)
        assert dist is not None
        log("starting relays: one on a directory, two replicas and a no-memory-cache one on the bucket")
        indexes = [
            _relay("relay, disk store", disk, export.key, dist.filename, work, env),
            _relay("relay, S3 store (replica 1 of 2)", s3, export.key, dist.filename, work, env),
            _relay("relay, S3 store (replica 2 of 2)", s3, export.key, dist.filename, work, env),
            _relay("relay, S3 store, --memory-cache 0", s3, export.key, dist.filename, work, env, "--memory-cache", "0"),
        ]
        rows: list[dict[str, object]] = []
        for index in indexes:
            rows += serve_bench.load_test(index, load, log)
        cold: dict[str, object] = {}
        for label, store, index in (("disk store", disk, indexes[0]), ("S3 store", s3, indexes[1])):
            seconds = []
            for rep in range(reps):
                new = write_export(exports, fake_sha(1000 + len(cold) * 100 + rep), 2 + rep, branches=())
                _publish(exports / new.key, store, env)
                seconds.append(_first_answer(f"{index.page_url.rsplit('/main/', 1)[0]}/{new.key}/simple/"))
            cold[label] = summarize(seconds)
            log(f"cold page after a new export, {label}: {cold[label]['median']:.2f} s")
        big = write_export(exports, fake_sha(5000), 50, dists=[DistSpec(f"monorepo.bench.d{n:04d}") for n in range(publish_dists)])
        size = sum(d.size + d.metadata_size for d in big.dists)
        publish = {
            "S3 store, first": _publish(exports / big.key, s3, env),
            "S3 store, again (every object already there)": _publish(exports / big.key, s3, env),
            "disk store, first": _publish(exports / big.key, disk, env),
        }
        for label, seconds in publish.items():
            log(f"relay publish of {publish_dists} dists, {label}: {seconds:.1f} s")
        leaf = _one_leaf_series(exports, work, env, weed, publish_dists, log)
        return {"load": rows, "cold_page_s": cold, "publish_s": publish, "publish_dists": publish_dists,
                "publish_bytes": size, "reps": reps, "one_leaf": leaf, "seaweedfs": subprocess.run(
                    [str(Path(sys.executable).parent / "weed"), "version"], capture_output=True, text=True).stdout.strip()}
    finally:
        for index in indexes:
            index.server.stop()
        weed.stop()
