"""What a benchmark process holds in memory, from the kernel's own counters."""

from __future__ import annotations


def status_kb(field: str) -> int:
    """A /proc/self/status field in kB: VmRSS now, VmHWM the peak so far."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
