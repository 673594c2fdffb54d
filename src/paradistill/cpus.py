"""How many CPU threads this process can really use (bottom layer, no imports from the package).

torch's default is the machine's core count; inside a container with a CPU quota, a CPU affinity mask, or on a
machine already busy with other jobs that oversubscribes the cores and can be many times slower than one
thread. `available_cpus()` is the smallest of: the affinity mask, the cgroup CPU quota (v2 `cpu.max`, v1
`cpu.cfs_quota_us / cpu.cfs_period_us`), and the cores left idle by the current load average.
"""

from __future__ import annotations

import math
import os


def _cgroup_quota() -> float | None:
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_cpus(consider_load: bool = True) -> int:
    """Cores this process can use without oversubscribing (>= 1)."""
    n = affinity_cpus()
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    if consider_load:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            busy = 0.0
        n = min(n, max(1, math.floor(n - busy + 0.5)))
    return max(1, n)


def default_threads() -> int:
    """The torch thread count to use when the user did not choose one: never more than torch's own default
    or an explicit OMP_NUM_THREADS, never more than `available_cpus()`."""
    import torch

    current = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS"):
        return current
    return max(1, min(current, available_cpus()))
