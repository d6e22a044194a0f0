"""Memory and CPU time of process trees and of the machine, read from /proc (Linux).

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


def _stat_fields(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; None if the process is gone. The command name
    (field 2) may contain spaces, so the fields are those after its closing ')'."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        fields = _stat_fields(entry.name) if entry.name.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        stack.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and every process below it, those that have exited and
    been waited for included (a parent's counts of its waited-for children), so it never goes
    down as PostgreSQL's backends or gunicorn's workers come and go."""
    fields = (_stat_fields(p) for p in descendants(pid))
    ticks = sum(int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]) for f in fields if f)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (every core: user, system, interrupts)."""
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def tree_memory(pid: int) -> TreeMemory:
    statuses = [s for s in (_status(p) for p in descendants(pid)) if s]
    return TreeMemory(
        processes=len(statuses),
        largest_peak_mib=max((s.get("VmHWM", 0.0) for s in statuses), default=0.0),
        total_mib=sum(s.get("RssAnon", 0.0) for s in statuses)
        + max((s.get("RssShmem", 0.0) for s in statuses), default=0.0),
    )


def database_pid() -> int | None:
    """The pid of the PostgreSQL server behind Django's connection, read from its pid file
    (None when that server does not run on this machine, e.g. behind DATABASE_URL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        data_dir = Path(cursor.fetchone()[0])
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
