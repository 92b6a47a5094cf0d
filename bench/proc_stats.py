"""Read a process group's memory and CPU from Linux /proc.

Servers run in their own process group, so summing over the group measures the
server even if its start command forks; with `exec` it is a single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    rss_kib: int      # sum of VmRSS now
    hwm_kib: int      # sum of VmHWM (each process's own peak RSS)
    cpu_s: float      # user + system CPU seconds so far


def _stat_fields(pid: int) -> List[bytes]:
    """Fields of /proc/PID/stat after "(comm) ": [state, ppid, pgrp, ...]."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        raw = f.read()
    # comm may contain spaces and parentheses; the last ')' ends it
    return raw[raw.rindex(b")") + 2:].split()


def group_pids(pgid: int) -> List[int]:
    """Live, non-zombie processes whose process group is pgid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except (OSError, ValueError):
            continue  # exited while we looked
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _status_kib(pid: int, key: str) -> int:
    prefix = key + ":"
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(prefix):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    # utime and stime are stat fields 14 and 15 (1-based), i.e. 11 and 12 here
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def sample_group(pgid: int) -> Optional[Sample]:
    """Current totals for the group, or None when nothing in it is alive."""
    pids = group_pids(pgid)
    if not pids:
        return None
    return Sample(rss_kib=sum(_status_kib(p, "VmRSS") for p in pids),
                  hwm_kib=sum(_status_kib(p, "VmHWM") for p in pids),
                  cpu_s=sum(_cpu_s(p) for p in pids))


def open_files_limit(pid: int) -> Optional[int]:
    """Soft RLIMIT_NOFILE of pid, to show in results that it was raised."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    value = line.split()[3]
                    return None if value == "unlimited" else int(value)
    except OSError:
        pass
    return None
