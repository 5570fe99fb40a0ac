"""How much memory a new process on this host may still take: the host's MemAvailable, or less when the
relay runs in a cgroup with a memory limit (a container, a systemd unit with MemoryMax=). A warm
builder asks before it starts a second Pants daemon beside the serving one."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
CGROUP_FS = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as a huge number (the page-rounded maximum of a signed 64-bit int).
_V1_UNLIMITED = 1 << 60


def available_memory(proc: Path = PROC, cgroup_fs: Path = CGROUP_FS) -> int | None:
    """Bytes a new process may still use, or None when it cannot be told (not Linux, say)."""
    candidates = [m for m in (host_available(proc), _cgroup_room(proc, cgroup_fs)) if m is not None]
    return min(candidates) if candidates else None


def host_available(proc: Path = PROC) -> int | None:
    """The host's MemAvailable in bytes (what the kernel can give without swapping), or None."""
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room(proc: Path, cgroup_fs: Path) -> int | None:
    """The least room (limit minus usage) of this process's memory cgroup and its ancestors."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    rooms: list[int] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2: limits may sit on any ancestor
            rooms += _rooms(cgroup_fs, path, "memory.max", "memory.current")
        elif "memory" in controllers.split(","):  # cgroup v1
            rooms += _rooms(cgroup_fs / "memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes")
    return min(rooms) if rooms else None


def _rooms(root: Path, path: str, limit_file: str, usage_file: str) -> list[int]:
    rooms = []
    directory = root / path.strip("/")
    while True:
        try:
            limit_text = (directory / limit_file).read_text().strip()
            usage = int((directory / usage_file).read_text().strip())
        except (OSError, ValueError):
            limit_text, usage = "max", 0
        if limit_text != "max":
            try:
                limit = int(limit_text)
            except ValueError:
                limit = _V1_UNLIMITED
            if limit < _V1_UNLIMITED:
                rooms.append(max(0, limit - usage))
        if directory == root or root not in directory.parents:
            return rooms
        directory = directory.parent
