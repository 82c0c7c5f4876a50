"""How many CPU threads torch should use: the cores this process may run on.

`os.cpu_count()` is the host's core count; a process limited by a CPU affinity mask
(`taskset`, a scheduler) or a cgroup CPU quota (a container's `--cpus`) gets fewer, and torch
running more threads than it has cores slows down badly under contention.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

__all__ = ["apply_threads", "available_cpus", "cgroup_cpu_limit"]

_CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = _CGROUP) -> float | None:
    """The cgroup CPU quota in cores (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), None if unlimited."""
    try:
        # "max 100000" (no limit) or "200000 100000" (2 cores)
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """Cores available to this process: its affinity mask, capped by the cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def apply_threads(requested: int | None) -> int:
    """torch.set_num_threads(requested, default: available_cpus()); returns the number set."""
    threads = requested or available_cpus()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
