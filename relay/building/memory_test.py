"""What a warm builder takes for the memory left: the host's MemAvailable, or the least room of the
relay's cgroup and its ancestors when one sets a limit (cgroup v2 and v1)."""

from __future__ import annotations

from pathlib import Path

from relay.building.memory import available_memory

GIB = 1 << 30


def _proc(tmp_path: Path, available_kib: int | None, cgroup: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    if available_kib is not None:
        (proc / "meminfo").write_text(f"MemTotal: 24000000 kB\nMemFree: 1000 kB\nMemAvailable: {available_kib} kB\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def _write(directory: Path, **files: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", ".", 1)).write_text(text + "\n")


def test_the_host_alone(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 8 * 1024 * 1024, "0::/\n")
    _write(tmp_path / "cg", memory_max="max", memory_current="123")  # the root: never a limit
    assert available_memory(proc, tmp_path / "cg") == 8 * GIB


def test_a_cgroup_v2_limit_on_an_ancestor(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 20 * 1024 * 1024, "0::/kubepods/pod1/relay\n")
    cg = tmp_path / "cg"
    _write(cg / "kubepods", memory_max="max", memory_current=str(30 * GIB))
    _write(cg / "kubepods/pod1", memory_max=str(16 * GIB), memory_current=str(11 * GIB))
    _write(cg / "kubepods/pod1/relay", memory_max="max", memory_current=str(10 * GIB))
    assert available_memory(proc, cg) == 5 * GIB  # the pod's limit, not the host's 20 GiB


def test_the_host_when_it_has_less_than_the_cgroup(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 2 * 1024 * 1024, "0::/relay.service\n")
    _write(tmp_path / "cg/relay.service", memory_max=str(16 * GIB), memory_current=str(1 * GIB))
    assert available_memory(proc, tmp_path / "cg") == 2 * GIB


def test_a_cgroup_v1_limit_and_its_unlimited_value(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 20 * 1024 * 1024, "12:cpu,cpuacct:/x\n4:memory:/docker/abc\n")
    v1 = tmp_path / "cg/memory/docker/abc"
    _write(v1, memory_limit_in_bytes=str(6 * GIB), memory_usage_in_bytes=str(4 * GIB))
    _write(tmp_path / "cg/memory/docker", memory_limit_in_bytes="9223372036854771712", memory_usage_in_bytes="1")
    assert available_memory(proc, tmp_path / "cg") == 2 * GIB


def test_over_the_limit_is_no_room_and_nothing_readable_is_unknown(tmp_path: Path) -> None:
    proc = _proc(tmp_path, None, "0::/full\n")
    _write(tmp_path / "cg/full", memory_max=str(GIB), memory_current=str(2 * GIB))
    assert available_memory(proc, tmp_path / "cg") == 0
    assert available_memory(tmp_path / "nowhere", tmp_path / "nowhere") is None
