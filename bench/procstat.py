"""CPU time and memory of whole process trees, read from /proc (Linux): the worker processes' own CPU,
not the benchmark's estimate of it.

A tree is a process and every descendant alive at the moment of reading (a Celery worker's pool children,
uvicorn's server). Children that already exited count through the parent's cutime/cstime once reaped.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
from collections import defaultdict
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; everything after its closing parenthesis is fixed.
    return raw[raw.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                tree[int(fields[1])].append(int(entry))
    return tree


def tree_of(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    children = children if children is not None else _children()
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, ()))
    return found


def cpu_seconds(roots: list[int]) -> float:
    """User + system CPU seconds of these process trees (live members, and reaped children of each)."""
    children = _children()
    total = 0
    for root in roots:
        for pid in tree_of(root, children):
            fields = _stat(pid)
            if fields is not None:  # utime, stime, cutime, cstime are fields 14-17 (index 11-14 here)
                total += sum(int(value) for value in fields[11:15])
    return total / _TICK


def own_process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes alone, without their children (e.g. a Celery worker's
    main process: receiving, acking, publishing events - apart from the tasks its pool runs)."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def rss_mb(pid: int) -> float:
    """Resident memory of one process (MB)."""
    fields = _stat(pid)
    return round(int(fields[21]) * _PAGE / 2**20, 1) if fields is not None else 0.0


def own_cpu_seconds() -> float:
    """This process's CPU (all its threads), without its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _first_cpu() -> dict[str, str]:
    """The fields of the first processor in /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
    except OSError:
        pass
    return fields


def this_machine() -> dict[str, object]:
    """What a result file records of the machine, so figures from two machines are never compared as equal.
    ``cpu_generation`` is vendor/family/model/stepping: a virtual machine's model name may not tell
    generations apart (two hosts of this workplace both said "AMD EPYC" and ran our code 2x apart)."""
    cpu = _first_cpu()
    generation = "/".join(cpu.get(field, "?") for field in ("vendor_id", "cpu family", "model", "stepping"))
    return {"cpus": os.cpu_count(), "cpu_model": cpu.get("model name", "unknown"),
            "cpu_generation": generation, "python": platform.python_version(),
            "platform": platform.platform(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}


class CpuMeter:
    """CPU seconds per named group of process trees, between ``start()`` and ``read()``; the harness
    (this process) is its own group. ``alone`` names groups of single processes measured without their
    children (a part of a tree that is also counted whole)."""

    def __init__(self, groups: dict[str, list[int]], alone: dict[str, list[int]] | None = None) -> None:
        self.groups = groups
        self.alone = alone or {}
        self._started: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        values = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        values.update({name: own_process_cpu_seconds(pids) for name, pids in self.alone.items()})
        values["harness"] = own_cpu_seconds()
        return values

    def start(self) -> CpuMeter:
        self._started = self._now()
        return self

    def read(self) -> dict[str, float]:
        now = self._now()
        return {name: round(now[name] - self._started.get(name, 0.0), 3) for name in now}


def pin(roots: list[int], cpus: set[int]) -> None:
    """Binds every thread of these process trees to ``cpus`` (a thread keeps its own affinity on Linux,
    so each one is set; threads and children started later inherit it)."""
    children = _children()
    for root in roots:
        for pid in tree_of(root, children):
            try:
                threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                continue  # exited meanwhile
            for tid in threads:
                with contextlib.suppress(OSError):  # exited meanwhile
                    os.sched_setaffinity(tid, cpus)
