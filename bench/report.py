"""docs/benchmarks.md and its plot, from the results of bench/main.py (never edited by hand)."""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable

import hardening_bench
import environment_bench
import pages_bench
import month_bench
import pull_scale_bench
import uv_workspace_bench
from procs import BENCH, ROOT

DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks-export.png"
NOTES = BENCH / "notes.md"

# The status-quo figures (one python_distribution per package, `pants package ::`).
STATUS_QUO = {"cold_100_s": 28.2, "cold_1000_s": 110.0, "warm_s": 0.72, "incremental_s": 1.03, "rss_mb": 590.0}


# The headings each part writes. A part with no results file keeps its sections (and its rows of the
# targets table) from the page as it was, marked as such: results of runs before bench/results/ was
# tracked exist only there, and a partial run must not drop them.
PART_SECTIONS = {
    "export": ("Export",),
    "serve": ("Index servers under load",),
    "install": ("Installs",),
    "pull": ("Pull mode",),
    "profile": ("Profiles",),
    "objectstore": ("Relays over an object store",),
    "hardening": ("Relay under mixed load and hostile clients",),
    "versions": ("Versions by content",),
    "cycles": ("Dependency cycles",),
    "environments": ("Environment dists",),
    "pages": ("Pages for people",),
    "uv": ("uv workspaces",),
    "scale": ("Exports at scale",),
    "history": ("History at scale",),
    "layout": ("Writing an export directory",),
    "month": ("A month of main in one store",),
    "pullscale": ("Pull mode at scale",),
}
EARLIER_ROW = " (an earlier run)"
CARRIED = "*Kept from an earlier run of this page: this run has no `bench/results/{part}.json`.*"


def _earlier_page(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """The `## ` sections of an earlier page by heading, and the rows of its targets table."""
    sections: dict[str, list[str]] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = [line]
        elif heading is not None:
            sections[heading].append(line)
    rows = [line for line in sections.get("Targets (from the issue)", [])
            if line.startswith("| ") and not line.startswith("| target ")]
    return sections, rows


def carried(part: str, earlier: dict[str, list[str]]) -> list[str]:
    """The sections of `part` as an earlier page had them, or nothing."""
    out: list[str] = []
    for heading in PART_SECTIONS.get(part, ()):
        lines = earlier.get(heading)
        if not lines:
            continue
        body = [line for line in lines[1:] if line != CARRIED.format(part=part)]
        while body and not body[0].strip():
            body.pop(0)
        out += [lines[0], "", CARRIED.format(part=part), "", *body]
        if out[-1].strip():
            out.append("")
    return out


# ---------------------------------------------------------------- formatting

def _num(value: float, digits: int) -> str:
    if value != value:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fmt(summary: Any, unit: str = "", digits: int = 2) -> str:
    """`median (min-max)`, or the single value when there was one run."""
    if not isinstance(summary, dict) or not summary.get("n"):
        return "-"
    median = _num(summary["median"], digits)
    suffix = f" {unit}" if unit else ""
    if summary["n"] == 1 or summary["min"] == summary["max"]:
        return f"{median}{suffix}"
    return f"{median}{suffix} ({_num(summary['min'], digits)}-{_num(summary['max'], digits)})"


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def median(summary: Any) -> float:
    return summary["median"] if isinstance(summary, dict) and summary.get("n") else float("nan")


# ---------------------------------------------------------------- machine

def _run(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return (result.stdout + result.stderr).strip()


def machine() -> list[str]:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
    os_release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    pretty = re.search(r'PRETTY_NAME="([^"]+)"', os_release)
    versions = []
    for dist in ("pip", "uv", "aiohttp", "pypiserver", "waitress", "devpi-server"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    nginx = re.search(r"nginx/(\S+)", _run(["nginx", "-v"]) or _run(["/usr/sbin/nginx", "-v"]))
    wrk = re.search(r"wrk (\S+)", _run(["wrk", "-v"]))
    pants_python = _run([str(ROOT / "pants"), "--bootstrap-venv"])
    pants_version = _run([f"{pants_python}/bin/python", "-c", "import sys; print(sys.version.split()[0])"])
    return [
        f"- CPU: {cpu.group(1).strip() if cpu else platform.processor()}, {os.cpu_count()} cores; "
        f"RAM {int(mem.group(1)) / 1024 / 1024:.0f} GiB" if mem else "",
        f"- OS: {pretty.group(1) if pretty else platform.platform()}, Linux {platform.release()}",
        f"- Pants 2.17.1 on Python {pants_version} (./pants bootstrap); clients and servers on Python "
        f"{platform.python_version()}",
        f"- {', '.join(versions)}; nginx {nginx.group(1) if nginx else '?'}; wrk {wrk.group(1) if wrk else '?'}",
    ]


# ---------------------------------------------------------------- sections

TOOL_LABELS = {
    "export-dists": "`export-dists ::`",
    "dependencies": "`dependencies ::` (Pants alone)",
    "package": "`package ::` (status quo)",
    "pip wheel": "`pip wheel` per package",
}


def _export_rows(export: list[dict[str, Any]]) -> list[list[str]]:
    cold_export = {r["targets"]: median(r["cold_s"]) for r in export if r["tool"] == "export-dists"}
    rows = []
    for r in export:
        ratio = ""
        if r["tool"] == "dependencies" and r["targets"] in cold_export:
            ratio = f"export-dists takes {cold_export[r['targets']] / median(r['cold_s']):.2f}x this"
            if r.get("pantsd_exited"):
                ratio += "; pantsd exited after its first run (over its 4 GiB memory limit): no warm runs"
        elif r["tool"] != "export-dists" and r["targets"] in cold_export:
            ratio = f"{median(r['cold_s']) / cold_export[r['targets']]:.1f}x export-dists"
        rows.append([
            TOOL_LABELS.get(r["tool"], r["tool"]), str(r["targets"]), fmt(r.get("cold_s"), "s", 1), fmt(r.get("cold_rss_mb"), "MB", 0),
            _num(r["pantsd_first_s"], 1) + " s" if "pantsd_first_s" in r else "-",
            fmt(r.get("warm_s"), "s"), fmt(r.get("warm_python_client_s"), "s"), fmt(r.get("incremental_s"), "s"),
            (f"{_num(r['pantsd_rss_mb'], 0)} MB (peak {_num(r['pantsd_peak_rss_mb'], 0)})"
             if "pantsd_rss_mb" in r else "-"),
            ratio or ("per package " + fmt(r["per_package_s"], "s") if "per_package_s" in r else ""),
        ])
    return rows


def plot(export: list[dict[str, Any]]) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    styles = {"export-dists": ("o-", "tab:blue"), "dependencies": ("x:", "tab:green"), "package": ("s-", "tab:red"),
              "pip wheel": ("^", "tab:gray")}
    for tool, (style, color) in styles.items():
        points = sorted((r["targets"], r["cold_s"]) for r in export if r["tool"] == tool and r.get("cold_s", {}).get("n"))
        if not points:
            continue
        xs = [p[0] for p in points]
        ys = [p[1]["median"] for p in points]
        errors = [[p[1]["median"] - p[1]["min"] for p in points], [p[1]["max"] - p[1]["median"] for p in points]]
        label = {"export-dists": "pants export-dists :: (cold)", "package": "pants package :: (cold, one python_distribution each)",
                 "dependencies": "pants dependencies :: (cold: Pants start-up and inference alone)",
                 "pip wheel": "pip wheel per package (2 at a time)"}[tool]
        ax.errorbar(xs, ys, yerr=errors, fmt=style, color=color, label=label, capsize=3)
        warm = sorted((r["targets"], r["warm_s"]["median"]) for r in export if r["tool"] == tool and "warm_s" in r)
        if warm:
            ax.plot([w[0] for w in warm], [w[1] for w in warm], style[0] + "--", color=color, alpha=0.6,
                    label=f"{tool}, pantsd up, nothing changed")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("targets (one dist each)")
    ax.set_ylabel("seconds (median, bars: min-max)")
    ax.set_title("Export time against target count")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOT)
    plt.close(fig)
    return True


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def targets(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Each target of the issue: the figure it compares, and whether it is met."""
    rows: list[list[str]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append([target, measured, "n/a" if met is None else ("**met**" if met else "**missed**")])

    export = results.get("export", {}).get("data", [])
    ed = _find(export, tool="export-dists", targets=1000)
    pk = _find(export, tool="package", targets=1000)
    if ed:
        cold = median(ed["cold_s"])
        if pk:
            ref, source = median(pk["cold_s"]), "package measured in this run"
        else:
            ref, source = STATUS_QUO["cold_1000_s"], "the issue's estimate for package"
        add("1,000 targets cold: >= 10x faster than `package` cold", f"{cold:.1f} s vs {ref:.1f} s ({source}): "
            f"{ref / cold:.1f}x", ref / cold >= 10)
        floor = _find(export, tool="dependencies", targets=1000) or {}

        def floor_text(key: str) -> str:
            return f"; Pants alone (`dependencies ::`, same run): {median(floor[key]):.2f} s" if key in floor else ""

        warm = median(ed.get("warm_s"))
        python_client = median(ed.get("warm_python_client_s"))
        add("1,000 targets, pantsd up, nothing changed: <= 0.7 s", f"{warm:.2f} s with ./pants (native client); "
            f"{python_client:.2f} s with Pants' Python client" + floor_text("warm_s"), warm <= 0.7)
        inc = median(ed.get("incremental_s"))
        add("1,000 targets, pantsd up, one leaf edited + commit: <= 1.0 s", f"{inc:.2f} s" + floor_text("incremental_s"),
            inc <= 1.0)
        rss = median(ed["cold_rss_mb"])
        ref_rss, source = (median(pk["cold_rss_mb"]), "package, 1,000, this run") if pk else (STATUS_QUO["rss_mb"], "issue")
        add("peak memory no worse than the status quo", f"cold {rss:.0f} MB vs {ref_rss:.0f} MB ({source}); "
            f"pantsd {ed.get('pantsd_peak_rss_mb', float('nan')):.0f} MB peak", rss <= ref_rss)
    elif export:
        add("1,000-target export targets", "1,000 targets not measured in this run", None)
    big = _find(export, tool="export-dists", targets=3000)
    if big:
        add("3,000 targets cold: < 60 s", fmt(big["cold_s"], "s", 1), median(big["cold_s"]) < 60)
    elif export:
        add("3,000 targets cold: < 60 s", "not measured in this run", None)

    serve = results.get("serve", {}).get("data", [])
    for endpoint in ("page (HTML)", "page (JSON)", "wheel"):
        # nginx serves HTML whatever the Accept header says: its HTML page is the JSON page's upper limit.
        nginx = next((r for r in serve if r["server"] == "nginx (static simple/)" and "rps" in r
                      and r["endpoint"] == endpoint), None) or _find(
            serve, server="nginx (static simple/)", endpoint="page (HTML)")
        devpi = _find(serve, server="devpi-server", endpoint=endpoint)
        for name in dict.fromkeys(r["server"] for r in serve if r["server"].startswith("relay")):
            relay = _find(serve, server=name, endpoint=endpoint)
            if not relay or "rps" not in relay or not nginx or "rps" not in nginx:
                continue
            rps, p99 = median(relay["rps"]), median(relay["p99_ms"])
            n_rps = median(nginx["rps"])
            d_rps = median(devpi["rps"]) if devpi and "rps" in devpi else float("nan")
            met = rps >= n_rps / 4 and (d_rps != d_rps or rps >= 10 * d_rps) and p99 < 10
            add(f"{name}, {endpoint}: >= 1/4 nginx, >= 10x devpi, p99 < 10 ms",
                f"{rps:,.0f} req/s = {rps / n_rps:.2f} of nginx, {rps / d_rps:.1f}x devpi; p99 {p99:.1f} ms", met)

    install = results.get("install", {}).get("data", [])
    for client in ("pip", "uv"):
        relay = _find(install, server="relay", client=client)
        nginx = _find(install, server="nginx (static simple/)", client=client)
        if relay and nginx:
            r, n = median(relay["seconds"]), median(nginx["seconds"])
            extra = relay.get("metadata_only_wheel_downloads", 0)
            req = relay.get("requests", {})
            add(f"`{client} install` of the {relay['dists']}-dist chain from the relay: within 1.1x of nginx, "
                "no wheel downloaded for metadata",
                f"{r:.2f} s vs {n:.2f} s = {r / n:.2f}x; {req.get('metadata', '?')} .metadata and "
                f"{req.get('whl', '?')} wheel requests: {extra} wheels fetched only for metadata",
                r <= 1.1 * n and extra == 0)

    pull = results.get("pull", {}).get("data")
    if pull:
        warm, cold = pull["warm"], pull["cold"]
        worst = max(warm["leaf_commits_s"])
        add(f"pull mode at {pull['targets']} targets: every warm build after the first <= 5 s",
            f"{', '.join(f'{s:.1f}' for s in warm['leaf_commits_s'])} s (cold: "
            f"{', '.join(f'{s:.1f}' for s in cold['leaf_commits_s'])} s)", worst <= 5)

    versions = results.get("versions", {}).get("data")
    if versions:
        n, history = versions["targets"], versions["history"]
        content = median(versions["incremental_content_s"])
        commit = median(versions["incremental_commit_s"])
        floor = median(versions["incremental_dependencies_s"])
        add(f"versions by content, {n:,} targets, {history:,} commits of history, pantsd up, one leaf committed: "
            "within 0.2 s of `dependencies ::` (same run)",
            f"{content:.2f} s vs {floor:.2f} s: {content - floor:+.2f} s (commit scheme {commit:.2f} s)",
            content - floor <= 0.2)
        cold_content, cold_commit = versions["cold_content_s"], versions["cold_commit_s"]
        add(f"versions by content, {n:,} targets: cold export cost against the commit scheme (same run)",
            f"{cold_content:.1f} s vs {cold_commit:.1f} s = {cold_content / cold_commit:.2f}x", None)
        store = versions["store"]
        add(f"store bytes after {store['content']['exports']} exports of one-leaf commits, {n:,} targets: "
            "an unchanged wheel stored once",
            f"content {_mb(store['content']['disk'])} vs commit {_mb(store['commit']['disk'])} on disk "
            f"({store['commit']['disk'] / max(store['content']['disk'], 1):.1f}x less)",
            store["content"]["disk"] < store["commit"]["disk"])

    scale = results.get("scale", {}).get("data")
    if scale:
        n = scale["targets"]
        export, floor = scale["cold_export"], scale["cold_dependencies"]
        if floor["over_limit"]:
            # The floor did not finish: its peak is known to be higher, its time is not known.
            measured = (f"{export['seconds']:.1f} s, {export['max_rss_mb']:,.0f} MB; `dependencies ::` stopped at "
                        f"{floor['seconds']:.1f} s, over {scale['memory_limit_mb']:,} MB: memory met, time not known")
            met = None if export["max_rss_mb"] < scale["memory_limit_mb"] else False
        else:
            measured = (f"{export['seconds']:.1f} s vs {floor['seconds']:.1f} s = {export['seconds'] / floor['seconds']:.2f}x; "
                        f"{export['max_rss_mb']:,.0f} MB vs {floor['max_rss_mb']:,.0f} MB")
            met = export["seconds"] <= floor["seconds"] and export["max_rss_mb"] <= floor["max_rss_mb"]
        add(f"{n:,} targets cold: <= 1.0x the time of `dependencies ::`, peak RSS no higher (same run)", measured, met)
        inc, base = median(scale["incremental_export_s"]), median(scale["incremental_floor_s"])
        goal = scale.get("floor_goal", "dependencies")
        note = "" if goal == "dependencies" else f" (floor: `{goal} ::`, lower; `dependencies ::` did not fit the daemon)"
        add(f"{n:,} targets, pantsd up, one leaf committed: within 0.2 s of `dependencies ::` (same run)",
            f"{inc:.2f} s vs {base:.2f} s: {inc - base:+.2f} s{note}",
            # Against a lower floor than the issue's, the 0.2 s goal is not decided.
            (inc - base <= 0.2) if goal == "dependencies" else None)
        rss = scale["pantsd_rss_mb"]
        last = max(rss, key=int)
        add(f"{n:,} targets: pantsd resident memory after {last} one-leaf exports",
            f"{rss[last]:,.0f} MB (after the first export {scale['pantsd_rss_after_first_mb']:,.0f} MB, after the "
            f"first export and one `{scale.get('floor_goal', 'dependencies')} ::` {scale['pantsd_rss_after_floor_mb']:,.0f} MB)", None)
    history = results.get("history", {}).get("data")
    if history:
        once, per = history["once"], history["per_commit"]
        add(f"history of {history['commits_read']:,} first-parent commits, {history['targets']:,} dists: read once, "
            "then per new commit, against `git log` alone (same run)",
            f"once {once['ours_s']:.2f} s after git's {once['git_s']:.2f} s; per commit {median(per['ours_s']):.3f} s "
            f"after git's {median(per['git_s']):.3f} s; history held {once['history_mb']:.0f} MB", None)
    month = results.get("month", {}).get("data")
    if month:
        rows += month_bench.targets(month)
    pullscale = results.get("pullscale", {}).get("data")
    if pullscale:
        rows += pull_scale_bench.targets(pullscale)
    return rows


def fmt_s(seconds: float) -> str:
    return f"{seconds:.1f}"


def _ratio(d: dict[str, Any]) -> str:
    warm, cold = d["warm"]["leaf_commits_s"], d["cold"]["leaf_commits_s"]
    w, c = sum(warm) / len(warm), sum(cold) / len(cold)
    return f"{w:.1f} s vs {c:.1f} s on average, {w / c:.2f}x"


def part_missing(results: dict[str, dict[str, Any]], part: str) -> bool:
    return part not in results


def _carried_rows(results: dict[str, dict[str, Any]], earlier_rows: list[str]) -> list[str]:
    """Rows of the earlier targets table that this run's results do not produce (their part was not run)."""
    if all(part in results for part in PART_SECTIONS):
        return []
    produced = {row[0] for row in targets(results)}
    rows = []
    for row in earlier_rows:
        cells = row.split(" | ")
        if cells[0][2:] in produced:
            continue
        if "pull" in results and cells[0][2:].startswith("pull mode"):
            continue  # rows of an earlier shape of the pull part, replaced by this run's
        if "scale" in results and cells[0][2:].startswith(f"{results['scale']['data']['targets']:,} targets"):
            continue  # the scale part's rows name its settings (how many exports), replaced by this run's
        if len(cells) > 1 and not cells[1].endswith(EARLIER_ROW):
            cells[1] += EARLIER_ROW
        rows.append(" | ".join(cells))
    return rows


def _mb(value: int) -> str:
    return f"{value / 1e6:.1f} MB"


def _versions_section(versions: dict[str, Any]) -> list[str]:
    d, s = versions["data"], versions["settings"]
    n, history = d["targets"], d["history"]
    store = d["store"]
    inc = {k: d[f"incremental_{k}_s"] for k in ("content", "commit", "dependencies")}
    return [
        "## Versions by content",
        "",
        f"Started {versions['started']}, {versions['seconds']:.0f} s in all. One synthetic monorepo of {n} targets "
        f"(`bench/generate_monorepo.py`, shape as above) with {history} commits of history added by "
        "`git fast-import` (each edits one module of a target, in a fixed stride over all targets), then "
        f"{s['commits']} one-leaf commits, each exported with both version schemes into their own output "
        "directory (pantsd up; the first of the two runs of a commit is timed, alternating the order, so "
        f"neither gains from the other), then {s['floor_reps']} one-leaf commits with `dependencies ::` "
        "(Pants' floor) in the same daemon. Compare within the run: other work may share the 2 cores ("
        + (f"load average {d['load_at_start']} at the start, {d['load_at_end']} at the end). "
           if "load_at_end" in d else "the load was not recorded in this run). ")
        + f"The last content-scheme export said: `{d.get('last_summary', '')}`.",
        "",
        table(["measure", "content scheme", "commit scheme"], [
            ["cold export, no pantsd, empty caches (1 run each)", f"{d['cold_content_s']:.1f} s",
             f"{d['cold_commit_s']:.1f} s"],
            ["incremental export (one leaf committed, pantsd up)", fmt(inc["content"], "s"), fmt(inc["commit"], "s")],
            ["`dependencies ::` after one leaf committed (floor)", fmt(inc["dependencies"], "s"), ""],
            [f"store after {store['content']['exports']} exports (on disk, hard links once)",
             _mb(store["content"]["disk"]), _mb(store["commit"]["disk"])],
            ["the same, as listed (each export's files counted)", _mb(store["content"]["listed"]),
             _mb(store["commit"]["listed"])],
            [f"`git log` walk of the {history + 1} commits (the command alone)", fmt(d["history_walk_s"], "s", 3), "-"],
        ]),
        "",
    ]


def _scale_timings(d: dict[str, Any]) -> list[str]:
    """Where the export's own clock went, by its debug timing lines (medians over the one-leaf exports)."""
    timings = d["export_timings_s"]

    def step(key: str) -> str:
        return fmt(summarize_values([t[key] for t in timings if key in t]), "s")

    engine = [t["planning"] - t["plan_rule"] for t in timings if "planning" in t and "plan_rule" in t]
    # The steps of the export whose plan rule took the median time (results of 2026-12-07 15:42 kept
    # only the last export's, as last_plan_rule).
    lines = d.get("export_plan_rule_lines") or []
    ranked = sorted((t.get("plan_rule", 0.0), n) for n, t in enumerate(timings) if n < len(lines))
    typical = (f"the median one's: `{lines[ranked[len(ranked) // 2][1]]}`" if ranked
               else f"the last one's: `{d.get('last_plan_rule', '')}`")
    return [
        "Where it went, by the export's timing lines (`export_dists.goal` and `export_dists.export` at debug): "
        f"planning {step('planning')}, of which the plan rule's body (what it awaits included) {step('plan_rule')} "
        f"and the engine's before the rule ran (its earlier inputs checked again) {fmt(summarize_values(engine), 's')}; "
        f"then the write {step('write')}. Staging ahead, on its own thread meanwhile: {step('staging')} (the write waited for it "
        f"{step('staging_waited')}). The plan rule's steps, {typical}.",
        *_scale_kept_plans(d),
        "",
    ]


def _scale_pairs(d: dict[str, Any]) -> list[str]:
    """Each one-leaf export against the floor run right after it (the run is noisy: both drift together)."""
    if d.get("floors_s") is None or len(d["floors_s"]) != len(d["exports_s"]) or not d["exports_s"]:
        return []
    pairs = [e - f for e, f in zip(d["exports_s"], d["floors_s"])]
    faster = sum(1 for p in pairs if p < 0)
    paired = summarize_values(pairs)
    return [
        f"Paired, each one-leaf export minus the floor right after it: median {paired['median']:+.2f} s (from "
        f"{paired['min']:+.1f} to {paired['max']:+.1f} s); the export was the faster in {faster} of {len(pairs)} pairs.",
        "",
    ]


def _scale_kept_plans(d: dict[str, Any]) -> list[str]:
    """What the exports said of the plans they kept from the export before (results since 2026-12-07 18:30)."""
    lines = d.get("export_plans_lines")
    if not lines:
        return []
    kept = [re.search(r"kept (\d+) of (\d+)", line) for line in lines]
    counts = sorted({f"{m.group(1)} of {m.group(2)}" for m in kept if m})
    others = sorted({line for line, m in zip(lines, kept) if not m})
    return [
        "",
        f"Plans kept from the export before (`reuse_plans`, `export_dists.export` at debug): {sum(1 for m in kept if m)} "
        f"of {len(lines)} exports kept {', '.join(counts) or 'none'}"
        + (f"; the others: {'; '.join(repr(o or '(nothing said: no plans kept yet in this pantsd)') for o in others)}" if others else "")
        + ".",
    ]


def _scale_section(payload: dict[str, Any]) -> list[str]:
    d, s = payload["data"], payload["settings"]
    n = d["targets"]
    goal = d.get("floor_goal", "dependencies")
    cold_e, cold_f = d["cold_export"], d["cold_dependencies"]

    def cold(run: dict[str, Any]) -> tuple[str, str]:
        if run["over_limit"]:
            return f"stopped at {run['seconds']:.1f} s", f"over {d['memory_limit_mb']:,} MB"
        return f"{run['seconds']:.1f} s", f"{run['max_rss_mb']:,.0f} MB"

    (e_s, e_mb), (f_s, f_mb) = cold(cold_e), cold(cold_f)
    ratio = "" if cold_f["over_limit"] else f"{cold_e['seconds'] / cold_f['seconds']:.2f}x"
    inc, base = d["incremental_export_s"], d["incremental_floor_s"]
    rss = d["pantsd_rss_mb"]
    marks = [k for k in sorted(rss, key=int) if int(k) in (1, 5, 10, 15, 20) or k == max(rss, key=int)]
    daemon_deps = d.get("dependencies_daemon")
    lines = [
        "## Exports at scale",
        "",
        f"Started {payload['started']}, {payload['seconds']:.0f} s in all (`bench/scale_bench.py`). One synthetic "
        f"monorepo of {n:,} targets (shape as above, {n * 3:,} modules), load average {d['load_at_start']:.1f} at the "
        f"start and {d.get('load_after_exports', float('nan')):.1f} after the daemon runs (other sessions' tests share the "
        "2 cores: compare within the run). Cold: no pantsd, empty caches, `dependencies ::` (Pants' floor: start-up, "
        "BUILD files, dependency inference) first, each Pants process tree stopped above "
        f"{d['memory_limit_mb']:,} MB" + (f" ({d['cold_from']})" if d.get("cold_from") else "") + ". Then one daemon "
        f"(`[GLOBAL].pantsd_max_memory_usage = \"{d['pantsd_max_memory_usage']}\"`: the default 4 GiB is below what "
        "Pants holds at this size, and pantsd would restart after every run): its first export, one "
        f"`{goal} ::`, then {len(d['exports_s'])} one-leaf commits (a constant added to a leaf module), each exported, "
        + ("alternating with" if s["floor_every"] == 1 else f"and after every {s['floor_every']}th")
        + f" one more one-leaf commit measured with `{goal} ::` instead."
        + (f" {d['daemon_note']}" if d.get("daemon_note") else "")
        + f" The last export said: `{d.get('last_summary', '')}`.",
        "",
    ]
    if daemon_deps:
        lines += [
            f"`dependencies ::` does not fit a daemon at this size: {daemon_deps['note']}, so the daemon's floor is "
            f"`{goal} ::` (start-up, options, every BUILD file parsed again per run as Pants 2.17 does, the targets "
            "expanded; no dependency inference), lower than `dependencies ::`: the difference below is an upper bound "
            "of what the export adds to Pants' own per-run cost.",
            "",
        ]
    lines += [
        table(["measure", "`export-dists ::`", f"`{goal} ::` (floor)" if goal != "dependencies" else "`dependencies ::` (floor)", "ratio"], [
            ["cold, no pantsd, empty caches: time (floor: `dependencies ::`)", e_s, f_s, ratio],
            ["cold: peak RSS (time(1))", e_mb, f_mb, ""],
            ["first run with pantsd", f"{d['pantsd_first_s']:.1f} s", f"{d['pantsd_first_floor_s']:.1f} s (after the export)", ""],
            ["one leaf committed, pantsd up", fmt(inc, "s"), fmt(base, "s"),
             f"{median(inc) - median(base):+.2f} s"],
        ]),
        "",
        *_scale_pairs(d),
        *([f"The export's own clock (its summary line's `[N s]`: the goal rule, from its start to its written "
           f"directory; Pants' per-run work before and after it is the floor's too): {fmt(summarize_values(d['export_goal_s']), 's')}.", ""]
          if d.get("export_goal_s") else []),
        *(_scale_timings(d) if d.get("export_timings_s") else []),
        "pantsd resident memory (VmRSS) after the first export "
        f"{d['pantsd_rss_after_first_mb']:,.0f} MB, after one `{goal} ::` {d['pantsd_rss_after_floor_mb']:,.0f} MB, "
        "then after N one-leaf exports: " + ", ".join(f"{k}: {rss[k]:,.0f} MB" for k in marks) + ".",
        "",
    ]
    profile = d.get("profile")
    if profile:
        lines += [profile.get("title") or (f"pantsd under py-spy during {len(profile['seconds'])} more one-leaf exports "
                  f"({', '.join(f'{x:.2f}' for x in profile['seconds'])} s under the profiler):"), "", "```",
                  *profile["summary"], "```", ""]
    return lines


def _history_section(payload: dict[str, Any]) -> list[str]:
    d = payload["data"]
    once, per, imp = d["once"], d["per_commit"], d.get("per_import_commit")
    steps = [("git_s", "`git log` (the floor: git alone)"), ("parse_s", "parse git's output"),
             ("inputs_s", "the dists' inputs and graph (here from the generated targets)"),
             ("compare_s", "both compared with the export before's"),
             ("index_s", "index of inputs, condensed graph (kept when equal)"),
             ("walk_s", "walk to every dist's origin"), ("ours_s", "ours in all (everything but git)")]
    rows = []
    for key, label in steps:
        if key not in once:
            continue
        row = [label, f"{once[key]:.3f} s", fmt(per[key], "s", 3)]
        if imp:
            row.append(fmt(imp[key], "s", 3))
        rows.append(row)
    header = ["step", "once (a fresh process)", "per new commit (a module edited)"]
    if imp:
        header.append("per new commit (an import added)")
    return [
        "## History at scale",
        "",
        f"Started {payload['started']} (`bench/history_bench.py`, in Pants' Python, no Pants run). A synthetic "
        f"monorepo of {d['targets']:,} targets with {d['history']:,} first-parent commits added by `git fast-import` "
        "(each edits one module; only every other target is ever edited, so half the dists keep the root commit "
        f"as their origin and a walk from scratch reads all {d['commits_read']:,} commits, the worst case). What an "
        "export does with the history, step by step as content_versions.py does it, against `git log` alone: once "
        "(a fresh pantsd reads the whole history), then per new commit (its commits on top of the history read "
        "before, the walk going on from the export before's), medians of "
        f"{per['ours_s']['n']} commits of each kind. Load average {d['load_at_start']:.1f} at the start, "
        f"{d['load_at_end']:.1f} at the end.",
        "",
        table(header, rows),
        "",
        f"Memory: the parsed history holds {once['history_mb']:.1f} MB (tracemalloc; git's output was "
        f"{once['git_output_mb']:.1f} MB), the whole benchmark process peaked at {d['max_rss_mb']:.0f} MB.",
        "",
    ]


def _layout_section(payload: dict[str, Any]) -> list[str]:
    d = payload["data"]
    after = d["after_commit"]
    cold = d["cold"]

    def col(key: str) -> str:
        return fmt(summarize_values([a[key] for a in after]), "s", 3)

    floor = summarize_values(d["floor_s"])
    total = summarize_values([a["total_s"] for a in after])
    staged = d.get("after_commit_staged")
    staged_total = median(summarize_values([a["total_s"] for a in staged])) if staged else float("nan")

    def staged_col(key: str) -> str:
        return fmt(summarize_values([a[key] for a in staged]), "s", 3) if staged else "-"

    rows = [
        ["render files (pages and manifest; kept per process)", f"{cold['render_s']:.3f} s", col("render_s"), staged_col("render_s")],
        ["find what to link (the newest earlier manifests)", f"{cold['find_links_s']:.3f} s", col("find_links_s"),
         staged_col("find_links_s") + (" (with keeping the staged files)" if staged else "")],
        ["write the directory (links, new files, rename)", f"{cold['write_s']:.3f} s", col("write_s"), staged_col("write_s")],
        ["in all (the export's path)", f"{cold['total_s']:.3f} s", col("total_s"), staged_col("total_s")],
        ["staging ahead, on a thread while Pants plans (off the export's path)", "", "", staged_col("staging_s")],
        ["files linked instead of written", "0", f"{after[-1]['linked']:,}", f"{staged[-1]['linked']:,}" if staged else "-"],
        ["the floor: directories and links alone", "", fmt(floor, "s", 3), ""],
    ]
    return [
        "## Writing an export directory",
        "",
        f"Started {payload['started']} (`bench/layout_bench.py`, core/export_dists_core/layout.py alone, no Pants). "
        f"{d['dists']:,} synthetic dists (2 KB wheels, three first-party requirements each) written by the goal's "
        "three calls into one output directory: a cold export, then exports after a commit that changed one "
        f"dist ({len(after)} in a row, the rest linked from the export before), and after each, the floor the "
        "contract sets for such an export, timed alone: one directory per dist (`simple/<project>/`) and three hard "
        "links per dist in a staging directory, renamed into place. Load average "
        f"{d['load_at_start']:.1f} at the start, {d['load_at_end']:.1f} at the end.",
        "",
        table(["step", "cold export", "after a commit (one dist changed)", "after a commit, staged ahead (as the goal does)"], rows),
        "",
        f"After a commit the write takes {median(total) / median(floor):.1f}x its floor (medians)"
        + (f"; staged ahead, the export's own path takes {staged_total:.3f} s of it, {staged_total / median(floor):.2f}x "
           "the floor, while the staging runs beside Pants' planning." if staged else "."),
        "",
    ]


def summarize_values(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    middle = len(ordered) // 2
    med = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": med, "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def write(results_dir: Path) -> Path:
    earlier, earlier_rows = _earlier_page(DOC.read_text()) if DOC.exists() else ({}, [])
    results = {}
    for path in sorted(results_dir.glob("*.json")):
        payload = json.loads(path.read_text())
        results[payload["part"]] = payload
    quick = any(p.get("quick") for p in results.values())
    commands = sorted({f"`{p.get('command', 'bench/run')}`" for p in results.values()})
    starts = sorted(p["started"] for p in results.values())
    span = f"between {starts[0]} and {starts[-1]}" if starts else "(none in bench/results/)"
    minutes = sum(p.get("seconds", 0) for p in results.values()) / 60
    out: list[str] = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/run (bench/report.py) from bench/results/; do not edit by hand. -->",
        "",
        f"Measured by {', '.join(commands) or 'no run with results'}, parts started {span}; report written "
        f"{datetime.datetime.now().astimezone().isoformat(timespec='minutes')}."
        + (" **Some parts come from a `--quick` smoke run: sizes and repetitions too small to compare.**"
           if quick else "")
        + (f" Parts kept from an earlier page (no results file): {', '.join(p for p in PART_SECTIONS if p not in results)}."
           if any(p not in results for p in PART_SECTIONS) else "")
        + " Each part's own start time and settings are listed with it. Figures are medians over the repeated "
        "runs, with the min-max spread in parentheses.",
        "",
        f"Measuring took {minutes:.0f} minutes. Run it yourself: `bench/run` (`bench/run --quick` for a "
        "smoke run, `bench/run --help` for the sizes and repetition counts, e.g. `BENCH_SIZES=100,1000`; "
        "`bench/run --only serve` re-measures one part, `bench/run --report` only rewrites this page).",
        "",
        "## Machine",
        "",
        *[line for line in machine() if line],
        f"- load average when the report was written: {os.getloadavg()[0]:.2f} (1 min)",
        "",
        "## Targets (from the issue)",
        "",
        table(["target", "measured", ""], targets(results)),
        *_carried_rows(results, earlier_rows),
        "",
    ]
    export = results.get("export")
    if export:
        s = export["settings"]
        out += [
            "## Export",
            "",
            f"Started {export['started']}, {export['seconds']:.0f} s in all. Synthetic monorepos from "
            f"`bench/generate_monorepo.py` (shape {json.dumps({k: v for k, v in s['shape'].items() if k not in ('targets', 'chain', 'dists', 'pyprojects')})}): "
            "one `python_sources` per directory.",
            "",
            "- **cold**: `./pants --no-pantsd export-dists --export-dists-output-dir=DIR ::` with empty "
            "Pants caches (`PANTS_LOCAL_STORE_DIR`, `PANTS_NAMED_CACHES_DIR`, `PANTS_WORKDIR` in a new "
            f"directory; the bootstrap's venv is kept), {s['cold_reps']} runs by size "
            f"(for `package`: {s['package_cold_reps']} runs by size); peak RSS of the Pants process (`/usr/bin/time -v`).",
            "- **pantsd first**: the first run with pantsd (it starts the daemon, caches empty).",
            f"- **warm**: pantsd up, nothing changed, {s['warm_reps']} runs, through `./pants` (which talks "
            "to pantsd through Pants' native client) and with `EXPORT_DISTS_NATIVE_CLIENT=0` (Pants' Python "
            "client, `python -m pants`), same options and environment.",
            f"- **incremental**: one module of a leaf target edited and committed, then the goal, "
            f"{s['incremental_reps']} runs.",
            "- **pantsd RSS**: the daemon's resident memory at the end (VmRSS, and VmHWM as peak).",
            "- **dependencies**: `./pants dependencies ::` on the same repository, one cold run and the same "
            "pantsd runs: Pants' own floor (start-up, BUILD files, dependency inference) with no export.",
            "- **package**: the same monorepo with a `python_distribution(provides=python_artifact(...), "
            "sdist=False)` beside every `python_sources`: `./pants package ::` (setuptools per dist, in "
            "Pants' sandboxes, 2 at a time); pantsd runs only at the smallest size.",
            "- **pip wheel**: a setuptools `pyproject.toml` per package, `pip wheel --no-deps` of each "
            "(build isolation, setuptools from a warm pip cache), 2 at a time.",
            "",
            table(["tool", "targets", "cold", "cold peak RSS", "pantsd first", "warm (./pants)",
                   "warm (Python client)", "incremental", "pantsd RSS", "cold ratio"], _export_rows(export["data"])),
            "",
        ]
        if plot(export["data"]):
            out += [f"![export time against target count]({PLOT.name})", ""]
    if part_missing(results, "export"):
        out += carried("export", earlier)
    serve = results.get("serve")
    if serve:
        s = serve["settings"]
        corpus = s["corpus"]
        rows = []
        rss = {r["server"]: r["rss_mb"] for r in serve["data"] if "rss_mb" in r}
        for r in serve["data"]:
            if "rss_mb" in r:
                continue
            if "skipped" in r:
                rows.append([r["server"], r["endpoint"], "-", "-", "-", f"not served: {r['skipped']}"])
                continue
            rows.append([r["server"], r["endpoint"], fmt(r["rps"], "", 0), fmt(r["p50_ms"], "ms"),
                         fmt(r["p99_ms"], "ms"), f"{r['bytes']:,} B {r['content_type']}; errors {int(r['errors'])}; "
                         f"server RSS {rss.get(r['server'], float('nan')):.0f} MB"])
        out += [
            "## Index servers under load",
            "",
            f"Started {serve['started']}. `{s['wrk']}` after one unmeasured second (warm-up), {s['reps']} runs "
            "each, all on 127.0.0.1 and on the "
            f"same 2 cores as the server. Corpus: one export of a {corpus['projects']}-project synthetic "
            f"monorepo. Page: `{corpus['page_project']}`; wheel: `{corpus['wheel']}`.",
            "",
            "- **relay**: `python -m relay serve --store STORE` (aiohttp, one process, access log on), pages "
            "of `/main/simple/` (the branch index), the wheel under `/<sha>/`; **relay (auth)** the same with "
            "`--auth-file` and HTTP basic credentials on every request; **N workers**: `--workers N` (N "
            "processes on one listening socket).",
            "- **pypiserver**: `pypi-server run --server auto --backend cached-dir` (bottle picks waitress, installed) over the same wheels.",
            "- **devpi-server**: `--offline-mode`, the wheels uploaded into a non-volatile index `root/bench` "
            "with no bases.",
            "- **nginx**: Debian's nginx serving the export directory (`<sha>/simple/<project>/index.html` and "
            "the wheels) as static files, `worker_processes auto`, access log on.",
            "",
            table(["server", "request", "req/s", "p50", "p99", "notes"], rows),
            "",
        ]
    if part_missing(results, "serve"):
        out += carried("serve", earlier)
    install = results.get("install")
    if install:
        s = install["settings"]
        rows = []
        for r in install["data"]:
            req = r.get("requests")
            rows.append([r["server"], r["client"], fmt(r["seconds"], "s"),
                         (f"{req['pages']} pages, {req['metadata']} .metadata, {req['whl']} wheels"
                          if req else "-")])
        out += [
            "## Installs",
            "",
            f"Started {install['started']}. `{s['corpus']['install_name']}` and its chain of "
            f"{s['corpus']['install_count']} first-party dists (each requires the next, pinned `==`), "
            f"into a new venv (`python -m venv --without-pip`), no cache, only the index under test, "
            f"{s['reps']} runs each, interleaved (each round installs once from every server with each client in turn):",
            "",
            "- pip: `pip --python VENV/bin/python install --no-cache-dir --index-url URL NAME`",
            "- uv: `uv pip install --no-cache --python VENV/bin/python --index-url URL NAME`",
            "",
            "Requests are counted from the relay's access log.",
            "",
            table(["server", "client", "seconds", "relay requests"], rows),
            "",
        ]
    if part_missing(results, "install"):
        out += carried("install", earlier)
    pull = results.get("pull")
    if pull:
        d = pull["data"]
        f = d["followed"]
        rows = [[builder, fmt_s(d[builder]["first_commit_s"]), ", ".join(fmt_s(s) for s in d[builder]["leaf_commits_s"])]
                for builder in ("cold", "warm")]
        latency = f["branch_page_while_building_ms"]
        out += [
            "## Pull mode",
            "",
            f"Started {pull['started']}. A generated monorepo of {d['targets']} targets "
            "(`bench/generate_monorepo.py`) served by `python -m relay serve --repo REPO --store EMPTY "
            "--builder cold|warm --export-command '<checkout>/pants [--no-pantsd] export-dists "
            "--export-dists-output-dir={output_dir} ::'` with empty Pants caches at the start of each "
            "builder's run; time from the request for `/<sha>/simple/` to its answer (worktree or "
            "checkout, the Pants run, publishing into the store). The first commit, then one-leaf "
            "commits (a new constant in one leaf module), each asked for once. Both builders in one run "
            "(CPU shared with other work: compare the ratio).",
            "",
            table(["builder", "first commit (s)", "each one-leaf commit after it (s)"], rows),
            "",
            f"Warm/cold on the one-leaf commits: {_ratio(d)}.",
            "",
            f"A followed branch (`--default-ref main --refresh-interval 1`, warm builder): a one-leaf "
            f"commit on main, then `/main/simple/` polled every 50 ms until it serves the commit.",
            "",
            table(["measure", "value"], [
                ["commit to served (s)", fmt(f["commit_to_served_s"], "s", 1)],
                [f"`/main/simple/` while its tip builds (served from the previous commit), {latency['n']} requests",
                 f"p50 {latency['p50']} ms, p99 {latency['p99']} ms"],
                ["warm builder's Pants daemon RSS after N builds (MB)",
                 ", ".join(f"{n}: {mb}" for n, mb in f["pantsd_rss_mb_after_builds"].items())],
            ]),
            "",
        ]
    if part_missing(results, "pull"):
        out += carried("pull", earlier)
    profile = results.get("profile")
    if profile:
        d = profile["data"]
        out += ["## Profiles", "", f"Started {profile['started']}, py-spy {profile['settings']['py-spy']}; "
                "summarized by `bench/profile_summary.py` (raw profiles under bench/out/profiles/).", ""]
        if "export" in d:
            e = d["export"]
            out += [f"A cold export of {e['targets']} targets (`python -m pants --no-pantsd export-dists ::`, "
                    f"empty caches), {e['seconds']:.1f} s under the profiler; the goal said: "
                    f"`{e['goal'].strip()}`", "", "```", *e["summary"], "```", ""]
        if "pantsd" in d:
            p = d["pantsd"]
            for phase, what in (("warm", "nothing changed"), ("incremental", "one leaf edited and committed each time")):
                if phase in p:
                    q = p[phase]
                    out += [f"pantsd during {p['runs']} exports of {p['targets']} targets, {what} "
                            f"({', '.join(f'{x:.2f}' for x in q['seconds'])} s under the profiler; the last said "
                            f"`{q['goal'].strip()}`):", "", "```", *q["summary"], "```", ""]
        if "relay" in d:
            r = d["relay"]
            out += [f"The relay serving `{r['url_path']}` under wrk ({r['rps_under_profiler']} req/s while "
                    "profiled):", "", "```", *r["summary"], "```", ""]
    if part_missing(results, "profile"):
        out += carried("profile", earlier)
    out += objectstore_section(results.get("objectstore"))
    if part_missing(results, "objectstore"):
        out += carried("objectstore", earlier)
    hardening = results.get("hardening")
    if hardening:
        out += hardening_bench.report_lines(hardening)
    if part_missing(results, "hardening"):
        out += carried("hardening", earlier)
    versions = results.get("versions")
    if versions:
        out += _versions_section(versions)
    if part_missing(results, "versions"):
        out += carried("versions", earlier)
    cycles = results.get("cycles")
    if cycles:
        s = cycles["settings"]
        rows = []
        for r in cycles["data"]:
            if r.get("verify"):
                rows.append([f"{r['size']} dists, each requires {r['density']}", r["representation"], r["client"],
                             f"{r['seconds']:.1f} s ({r['summary']})"])
                continue
            took = f"> {r['seconds']:.0f} s (killed)" if r.get("timed_out") else f"{r['seconds']:.1f} s ({r['installed']} dists)"
            rows.append([f"{r['size']} dists, each requires {r['density']}", r["representation"], r["client"], took])
        out += [
            "## Dependency cycles",
            "",
            f"Started {cycles['started']}. A synthetic monorepo whose targets form one strongly connected "
            "cycle (`bench/generate_monorepo.py --cycle N --cycle-density D`: member `k<i>` imports "
            "`k<i+1>` and D - 1 other members), exported with `pants export-dists ::`; its first member "
            "installed from the export directory into a new venv (`--no-index --find-links DIR`, no cache), "
            f"one run per row, killed after {s['timeout']:.0f} s. The second representation (one wheel "
            "holding every member's files, each member a thin dist requiring it) is built from the same "
            "export by `bench/cycle_bench.py`; it was measured and not adopted (docs/design.md). "
            "`export-dists-relay verify of every dist` rows: `export-dists-relay verify EXPORT_DIR --installer uv|pip --jobs 2` over the "
            "whole export (every member installed alone into a fresh venv, each install pulling in the cycle, "
            "then imported); the pip row is pip >= 25.2 in verify's own tool venv.",
            "",
            table(["cycle", "representation", "client", "install"], rows),
            "",
        ]
    if part_missing(results, "cycles"):
        out += carried("cycles", earlier)
    if "environments" in results:
        out += environment_bench.section(results["environments"], fmt, table)
    if part_missing(results, "environments"):
        out += carried("environments", earlier)
    if "pages" in results:
        out += pages_bench.section(results["pages"], fmt, table)
    if part_missing(results, "pages"):
        out += carried("pages", earlier)
    if "uv" in results:
        out += uv_workspace_bench.section(results["uv"], fmt, table)
    if part_missing(results, "uv"):
        out += carried("uv", earlier)
    if "scale" in results:
        out += _scale_section(results["scale"])
    if part_missing(results, "scale"):
        out += carried("scale", earlier)
    if "history" in results:
        out += _history_section(results["history"])
    if part_missing(results, "history"):
        out += carried("history", earlier)
    if "layout" in results:
        out += _layout_section(results["layout"])
    if part_missing(results, "layout"):
        out += carried("layout", earlier)
    if "month" in results:
        out += month_bench.section(results["month"], fmt, table)
    if part_missing(results, "month"):
        out += carried("month", earlier)
    if "pullscale" in results:
        out += pull_scale_bench.section(results["pullscale"], fmt, table)
    if part_missing(results, "pullscale"):
        out += carried("pullscale", earlier)
    if NOTES.exists():
        out += [NOTES.read_text().rstrip(), ""]
    DOC.write_text("\n".join(out))
    return DOC


def _weed_version(text: str) -> str:
    # `weed version` prints e.g. "version 8000GB 4.48 pypi linux amd64".
    words = text.split()
    return words[2] if len(words) > 2 and words[0] == "version" else text


def objectstore_section(part: dict[str, Any] | None) -> list[str]:
    if not part:
        return []
    d, s = part["data"], part["settings"]
    load = [
        [r["server"], r["endpoint"], fmt(r["rps"], "", 0), fmt(r["p99_ms"], "ms", 1), str(int(r["errors"]))]
        for r in d["load"] if "rps" in r
    ]
    return [
        "## Relays over an object store",
        "",
        f"Started {part['started']}. SeaweedFS {_weed_version(d['seaweedfs'])} (`weed server`, one process, data on this machine's "
        "disk) on 127.0.0.1; relays with `--store s3://bench/relay` (two replicas, and one with "
        "`--memory-cache 0`, so every wheel is streamed from the bucket) beside one with `--store DIR`, "
        f"all serving a 4-dist export (`relay_testing/exports.py`). Load: `{s['wrk']}`, {s['wrk_reps']} run(s) after a "
        "1 s warm-up, against one relay at a time; all share the machine's 2 cores with the store.",
        "",
        table(["relay", "endpoint", "req/s", "p99", "errors"], load),
        "",
        f"A cold page after a new export: `relay publish` of a new commit's export, then the time until "
        f"`/<sha>/simple/` first answers 200 on a running relay (polled every 10 ms; {d['reps']} runs). "
        "A directory store is rescanned at most once a second; an S3 store lists its manifests every 5 s "
        "and looks a requested commit's manifest up itself (one HEAD) when the listing does not have it.",
        "",
        table(["store", "seconds"], [[k, fmt(v, "s", 2)] for k, v in d["cold_page_s"].items()]),
        "",
        f"`relay publish` of a {d['publish_dists']}-dist export ({d['publish_bytes'] / 1e6:.1f} MB of wheels and "
        ".metadata files, one run each, wall time of the command including its start-up):",
        "",
        table(["store", "seconds"], [[k, f"{v:.1f} s"] for k, v in d["publish_s"].items()]),
        "",
        *_one_leaf_rows(d.get("one_leaf")),
    ]


def _one_leaf_rows(leaf: dict[str, Any] | None) -> list[str]:
    if not leaf:
        return []
    return [
        f"A followed branch with versions by content: {leaf['exports']} exports of {leaf['dists']} dists "
        f"({leaf['export_bytes'] / 1e6:.1f} MB of wheels and .metadata files each), one leaf dist changed per "
        "export, each published with `relay publish` to both stores. Publish after a one-leaf commit "
        f"(median of {leaf['exports'] - 1}, wall time of the command) and what each store holds at the end: "
        "the bucket stores each file once by content (`files/<sha256>`), the directory store hard-links "
        "unchanged files (counted once per inode).",
        "",
        table(
            ["store", "one-leaf publish", "bytes after all exports"],
            [
                ["S3 store", fmt(leaf["publish_s"]["S3 store"], "s", 2), f"{leaf['bucket_bytes'] / 1e6:.1f} MB ({leaf['bucket_objects']} objects)"],
                ["disk store", fmt(leaf["publish_s"]["disk store"], "s", 2), f"{leaf['disk_bytes'] / 1e6:.1f} MB"],
            ],
        ),
        "",
    ]
