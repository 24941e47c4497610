"""Which process a worker registry row names, and whether it still runs: this machine's identity
(the kernel's boot and the pid namespace) and a process's start, told apart from a reused pid."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import psutil


@cache
def this_machine() -> str | None:
    """Processes with equal values see the same pids: the kernel's boot id and the pid namespace.
    None where the system does not say (then only heartbeats and stops tell a worker is gone)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}/{namespace}"


def process_start(pid: int) -> float | None:
    """When the process started, in clock ticks since boot (None: no such process).

    Not psutil's create_time(): that is boot time plus these ticks, with the boot time worked out
    from the wall clock at each reading, so it moves whenever the clock is stepped (NTP, a VM
    resumed; psutil issue 2526) and a live process would look like another one. The kernel's
    tick count never moves; psutil has no public call for it. Where there is no /proc,
    this_machine() is None and rows are never judged by their process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return float(psutil.Process(pid).create_time())
    # Field 22, counted after the name in parentheses (which may hold spaces and parentheses).
    return float(stat.rsplit(")", 1)[1].split()[19])


def process_alive(pid: int, started: float) -> bool:
    """Whether the process that started at `started` (process_start) still runs (a zombie,
    never reaped, does not: it will never beat again)."""
    try:
        if process_start(pid) != started:
            return False  # gone, or the pid was given to another process
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; it is not ours to inspect
