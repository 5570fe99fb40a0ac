"""Prometheus metrics of the relay (`GET /metrics`): requests, latency, builds, the store, evictions, auth."""

from __future__ import annotations

import bisect
import time
from typing import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from relay.building.log import BuildLog
from relay.storage.store import Footprint, Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Request latency buckets (seconds): pages and files answer in well under a millisecond when warm;
# the top buckets catch pull-mode requests that wait for a build.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0)


class _StateCollector(Collector):
    """Values read when scraped, not counted per request: the store's exports and bytes, the builds."""

    def __init__(self, store: Store, builds: Callable[[], BuildLog | None]) -> None:
        self._store = store
        self._builds = builds
        self._bytes = (-1, 0)  # (the store's generation, its Footprint then): counted once a change

    def _store_bytes(self) -> int:
        generation = self._store.generation
        if self._bytes[0] != generation:
            self._bytes = (generation, Footprint(self._store.exports().values()).total)
        return self._bytes[1]

    def collect(self) -> Iterator[Metric]:
        exports = self._store.exports()
        yield GaugeMetricFamily("relay_store_exports", "Exports in the store.", value=len(exports))
        yield GaugeMetricFamily(
            "relay_store_bytes",
            "Bytes of the exports in the store: manifests, and each listed file once (docs/design.md).",
            value=self._store_bytes(),
        )
        builds = self._builds()
        if builds is None:
            return
        yield GaugeMetricFamily("relay_builds_queued", "Pull-mode builds waiting for a slot.", value=len(builds.queued))
        yield GaugeMetricFamily("relay_builds_running", "Pull-mode builds running.", value=len(builds.running))
        finished = CounterMetricFamily("relay_builds", "Pull-mode builds finished, by outcome.", labels=["outcome"])
        finished.add_metric(["ok"], builds.succeeded)
        finished.add_metric(["failed"], builds.failed)
        yield finished
        yield CounterMetricFamily(
            "relay_build_seconds", "Seconds spent in finished pull-mode builds.", value=builds.seconds
        )


class _RequestStats:
    """Requests by (route, status) and latency by route, as plain numbers on the event loop.

    prometheus_client's Counter.inc and Histogram.observe take a lock per call (3-8 us together a
    request on a busy 2-core machine); an int and a bucket index here cost well under 1 us, and the
    numbers become metric families only when scraped.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        # route -> [count per bucket (the last one is +Inf)], and route -> sum of seconds
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        buckets = self.buckets.get(route)
        if buckets is None:
            buckets = self.buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
            self.sums[route] = 0.0
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sums[route] += seconds


class _RequestCollector(Collector):
    def __init__(self, stats: _RequestStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "relay_requests", "HTTP requests answered, by route (handler) and status.", labels=["route", "status"]
        )
        for (route, status), count in sorted(self._stats.counts.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "relay_request_duration_seconds",
            "Time from a request's arrival at the application to its response (files: to the start of the body).",
            labels=["route"],
        )
        for route, counts in sorted(self._stats.buckets.items()):
            cumulative, total = [], 0
            for bound, count in zip((*map(floatToGoString, LATENCY_BUCKETS), "+Inf"), counts):
                total += count
                cumulative.append((bound, total))
            latency.add_metric([route], cumulative, sum_value=self._stats.sums[route])
        yield latency


class Metrics:
    """One registry per application (tests make many apps in one process; no global state)."""

    def __init__(self, store: Store, builds: Callable[[], BuildLog | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests = _RequestStats()
        self.observe = self._requests.observe
        self.auth_failures = Counter(
            "relay_auth_failures",
            "Requests refused for credentials: `missing` (none sent, as pip's first try) or `rejected` (wrong).",
            ["reason"], registry=self.registry,
        )
        self.evictions = Counter("relay_evictions", "Exports evicted from the store.", registry=self.registry)
        self.registry.register(_RequestCollector(self._requests))
        self.registry.register(_StateCollector(store, builds))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The metrics and their content type, in the format the scraper's Accept asks for
        (Prometheus text, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


METRICS = web.AppKey("metrics", Metrics)


def _route(request: web.Request) -> str:
    """The handler's name: a small, fixed set of label values whatever the paths clients send."""
    match_info = request.match_info
    if match_info.http_exception is not None:
        return "unmatched"
    return getattr(match_info.handler, "__name__", "other")


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request, refusals of the guard included (it runs inside this one)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        metrics = request.app[METRICS]
        metrics.observe(_route(request), status, time.perf_counter() - started)
        if status == 401:
            metrics.auth_failures.labels("rejected" if "Authorization" in request.headers else "missing").inc()


async def metrics_page(request: web.Request) -> web.Response:
    body, content_type = request.app[METRICS].exposition(request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
