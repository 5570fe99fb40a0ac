"""Summarize a `py-spy record -f raw` profile of a Pants run: seconds of samples per rule.

    bench/out/venv/bin/py-spy record -r 40 -f raw -o export.raw -- \\
        "$(./pants --bootstrap-venv)/bin/python" -m pants --no-pantsd export-dists ::
    bench/out/venv/bin/python bench/profile_summary.py export.raw --rate 40

(run py-spy in the monorepo with the variables `./pants --bootstrap-env` prints exported). Pants
runs each rule as a generator driven by its Rust engine (`native_engine_generator_send`), so the
frame right below it names the rule; samples with no Python frame are the engine's own Rust work
(files, snapshots, parsing, processes), and the main thread is Pants' start-up (options, rule
graph, scheduler) and waiting for the result. Samples are summed over threads.
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py:81)", "_worker (concurrent/futures/thread.py:83)")
_FRAME = re.compile(r"(\S+) \((\S+?):(\d+)\)")


_WAITING_LEAVES = ("syscall", "select", "sched_yield", "__lll_lock_wait", "epoll_wait", "futex")
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}")
_NODE = re.compile(r"engine::nodes::([A-Z]\w+)::(\w+)")


def summarize_native(path: Path, rate: float) -> list[str]:
    """A `py-spy record --native` profile of pantsd: per thread's Python entry point (or engine node
    kind), seconds busy (on a CPU) and seconds waiting (a futex, select or yield at the leaf)."""
    busy: collections.Counter[str] = collections.Counter()
    waiting: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = [_RUST_HASH.sub("", f) for f in stack.split(";")]
        nodes = [f"engine node {m.group(1)}::{m.group(2)}" for f in frames for m in [_NODE.search(f)] if m]
        python = [f for f in frames if ".py:" in f]
        where = nodes[-1] if nodes else (python[-1] if python else "no Python frame, no engine node")
        (waiting if frames[-1].startswith(_WAITING_LEAVES) else busy)[where] += count
        mine = [f for f in python if "export_dists" in f]
        if mine:
            ours[mine[0]] += count
    lines = [f"{total / rate:.1f} s of samples ({total} at {rate:g}/s, summed over threads), "
             f"{sum(busy.values()) / rate:.1f} s of them on a CPU", "", "on a CPU:"]
    lines += [f"{n / rate:8.2f} s  {where}" for where, n in busy.most_common(8)]
    lines += ["", "waiting (futex, select, yield):"]
    lines += [f"{n / rate:8.2f} s  {where}" for where, n in waiting.most_common(6)]
    lines += ["", "in export-dists' own code:"]
    lines += [f"{n / rate:8.2f} s  {where}" for where, n in ours.most_common(8)] or ["    none sampled"]
    return lines


def summarize(path: Path, rate: float) -> list[str]:
    by_part: collections.Counter[str] = collections.Counter()
    inside_ours: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        if not frames:
            by_part["(no Python frame: Rust engine work)"] += count
        elif frames[0].startswith("native_engine_generator_send") and len(frames) > 1:
            match = _FRAME.match(frames[1])
            rule = f"{match.group(1)} ({match.group(2)})" if match else frames[1]
            by_part[f"rule {rule}"] += count
            if match and "export_dists" in match.group(2) and len(frames) > 2:
                callee = _FRAME.match(frames[2])
                where = f"{callee.group(1)} ({callee.group(2)}:{callee.group(3)})" if callee else frames[2]
                inside_ours[f"{match.group(1)}:{match.group(3)} -> {where}"] += count
        elif frames[0].startswith("_run_module_as_main"):
            by_part["main thread: Pants start-up, then waiting for the goal"] += count
        else:
            by_part[f"other thread: {frames[0]}"] += count
    lines = [f"{total / rate:.1f} s of samples ({total} at {rate:g}/s, summed over threads)", ""]
    lines += [f"{n / rate:7.2f} s  {part}" for part, n in by_part.most_common(20)]
    if inside_ours:
        lines += ["", "inside export-dists' rules (rule:line -> callee):"]
        lines += [f"{n / rate:7.2f} s  {part}" for part, n in inside_ours.most_common(8)]
    return lines


def summarize_server(path: Path, rate: float, top: int = 14) -> list[str]:
    """Share of samples per function of a server process: where its time goes (self and inclusive)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        if stack.endswith(_IDLE_LEAVES):
            idle += count  # a thread-pool worker waiting for work: py-spy does not always see it as idle
            continue
        total += count
        frames = []
        for frame in (f for f in stack.split(";") if f):
            match = _FRAME.match(frame)
            frames.append(f"{match.group(1)} ({match.group(2).split('site-packages/')[-1]})" if match else frame)
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            if any(key in frame for key in ("relay/", "logging/", "web_protocol", "web_response", "web_fileresponse",
                                              "concurrent/futures")):
                inclusive[frame] += count
    if not total:
        return ["no samples"]
    lines = [f"{total} busy samples at {rate:g}/s, all threads ({idle} idle thread-pool samples left out)", "",
             "self (where the CPU is):"]
    lines += [f"{100 * n / total:5.1f} %  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive (relay, aiohttp responses, logging, thread pool):"]
    lines += [f"{100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--rate", type=float, default=40.0, help="py-spy's -r (samples per second)")
    args = parser.parse_args(argv)
    try:
        print("\n".join(summarize(args.profile, args.rate)))
    except BrokenPipeError:  # e.g. piped into head
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
