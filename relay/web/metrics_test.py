"""`/metrics`: Prometheus text with requests, latency, store, builds, evictions and auth failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from relay.web.app import Settings
from relay.auth.credentials import Authenticator, add_entry, password_entry
from relay.building.log import BuildLog
from relay.conftest import MakeClient
from relay.contract import Export
from relay.building.materialize_test import fake_command, git, pull_client, repo  # noqa: F401 (repo: a fixture)
from relay.web.metrics import Metrics
from relay.storage.store import DiskStore, EvictionPolicy


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition by (name, sorted labels); parsing it checks the format too."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return samples(await response.text())


@pytest.mark.asyncio
async def test_requests_are_counted_by_route_and_status_and_timed(client: TestClient, exports: list[Export]) -> None:
    for _ in range(3):
        assert (await client.get("/main/simple/monorepo-chain-a/")).status == 200
    assert (await client.get("/main/simple/not-here/")).status == 404
    assert (await client.get("/main/simple/Monorepo_Chain_A/", allow_redirects=False)).status == 301
    assert (await client.get("/a/../b")).status in (400, 404)
    got = await scrape(client)
    assert got[("relay_requests_total", (("route", "project_index"), ("status", "200")))] == 3
    assert got[("relay_requests_total", (("route", "project_index"), ("status", "404")))] == 1
    assert got[("relay_requests_total", (("route", "project_index"), ("status", "301")))] == 1
    assert got[("relay_request_duration_seconds_count", (("route", "project_index"),))] == 5
    assert got[("relay_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "project_index")))] == 5
    # Labels are handler names, never paths: clients cannot grow the series.
    routes = {dict(labels).get("route") for (name, labels) in got if name == "relay_requests_total"}
    assert routes <= {"project_index", "root_index", "dist_file", "constraints", "add_slash", "health", "home",
                      "ref_home", "metrics_page", "unmatched"}, routes


@pytest.mark.asyncio
async def test_store_exports_and_bytes(client: TestClient, store_dir: Path, exports: list[Export]) -> None:
    got = await scrape(client)
    assert got[("relay_store_exports", ())] == 4
    on_disk = sum(p.stat().st_size for e in exports for p in (store_dir / e.key).iterdir() if p.name.endswith((".whl", ".metadata")))
    assert got[("relay_store_bytes", ())] >= on_disk > 0
    assert ("relay_builds_queued", ()) not in got  # push mode: no builds


@pytest.mark.asyncio
async def test_metrics_need_credentials_and_count_auth_failures(
    make_client: MakeClient, exports: list[Export], tmp_path: Path
) -> None:
    auth_file = tmp_path / "auth"
    add_entry(auth_file, password_entry("alice", "secret"))
    client = await make_client(auth=Authenticator(auth_file))
    assert (await client.get("/metrics")).status == 401
    wrong = aiohttp.BasicAuth("alice", "wrong").encode()
    assert (await client.get("/main/simple/", headers={"Authorization": wrong})).status == 401
    right = aiohttp.BasicAuth("alice", "secret").encode()
    got = await scrape(client, Authorization=right)
    assert got[("relay_auth_failures_total", (("reason", "missing"),))] == 1
    assert got[("relay_auth_failures_total", (("reason", "rejected"),))] == 1
    assert got[("relay_requests_total", (("route", "metrics_page"), ("status", "401")))] == 1


@pytest.mark.asyncio
async def test_evictions_are_counted(make_client: MakeClient, exports: list[Export]) -> None:
    # Every export over a 1-byte cap: the first eviction round, at start-up, takes them all.
    client = await make_client(Settings(policy=EvictionPolicy(max_age_seconds=None, max_size_bytes=1)))
    got = await scrape(client)
    for _ in range(200):
        if got.get(("relay_evictions_total", ())) == len(exports):
            break
        await asyncio.sleep(0.05)
        got = await scrape(client)
    assert got[("relay_evictions_total", ())] == len(exports)
    assert got[("relay_store_exports", ())] == 0


def test_builds_queued_running_failed_and_seconds(store_dir: Path) -> None:
    builds = BuildLog()
    for sha in ("a" * 40, "b" * 40, "c" * 40, "d" * 40):
        builds.queue(sha)
    for sha in ("b" * 40, "c" * 40, "d" * 40):
        builds.start(sha)
    builds.finish("c" * 40, "failed (exit status 1)")
    builds.finish("d" * 40, None)
    got = samples(Metrics(DiskStore(store_dir), lambda: builds).exposition()[0].decode())
    assert got[("relay_builds_queued", ())] == 1
    assert got[("relay_builds_running", ())] == 1
    assert got[("relay_builds_total", (("outcome", "failed"),))] == 1
    assert got[("relay_builds_total", (("outcome", "ok"),))] == 1
    assert got[("relay_build_seconds_total", ())] >= 0


@pytest.mark.asyncio
async def test_pull_mode_builds_are_counted_and_shown(
    make_client: MakeClient, store_dir: Path, repo: Path, tmp_path: Path
) -> None:
    """A real build that fails and one that succeeds, through the materializer: /metrics and `/` agree."""
    client, _ = await pull_client(make_client, store_dir, repo, fake_command(tmp_path / "runs", "--fail"))
    head = git(repo, "rev-parse", "HEAD")
    assert (await client.get(f"/{head}/simple/")).status == 502
    good, _ = await pull_client(make_client, store_dir, repo, fake_command(tmp_path / "runs"))
    assert (await good.get(f"/{head}/simple/")).status == 200
    failed = await scrape(client)
    assert failed[("relay_builds_total", (("outcome", "failed"),))] == 1
    assert failed[("relay_builds_running", ())] == 0 and failed[("relay_builds_queued", ())] == 0
    assert (await scrape(good))[("relay_builds_total", (("outcome", "ok"),))] == 1
    home = await (await client.get("/")).text()
    assert f"<code>{head[:12]}</code>" in home and "the failure the test expects" in home
