"""Memory of a process tree, read from /proc (Linux): peak and current resident set sizes.

`VmHWM` is a process's peak RSS. Shared memory (PostgreSQL's shared_buffers) appears in the
RSS of every process that touched it, so a tree's total counts each process's private memory
(`RssAnon`) and the largest shared part (`RssShmem`) once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class TreeMemory:
    processes: int
    largest_peak_mib: float  # the largest VmHWM of one process
    total_mib: float  # sum of private memory + the largest shared part

    def describe(self) -> str:
        return (
            f"{self.processes} process(es), largest peak RSS {self.largest_peak_mib:,.0f} MiB, "
            f"total {self.total_mib:,.0f} MiB (private memory, shared counted once)"
        )


def _status(pid: int) -> dict[str, float]:
    """The kB fields of /proc/<pid>/status, in MiB (empty if the process is gone)."""
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) / 1024
    return fields


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name (field 2) may contain spaces; the parent pid follows its ')'.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        stack.extend(children.get(current, []))
    return tree


def tree_memory(pid: int) -> TreeMemory:
    statuses = [s for s in (_status(p) for p in descendants(pid)) if s]
    return TreeMemory(
        processes=len(statuses),
        largest_peak_mib=max((s.get("VmHWM", 0.0) for s in statuses), default=0.0),
        total_mib=sum(s.get("RssAnon", 0.0) for s in statuses)
        + max((s.get("RssShmem", 0.0) for s in statuses), default=0.0),
    )


def own_peak_mib() -> float:
    """This process's peak RSS."""
    return _status(os.getpid()).get("VmHWM", 0.0)


def postgres_pid(data_dir: Path) -> int | None:
    """The postmaster's pid from its pid file (None when the server is not running there)."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
