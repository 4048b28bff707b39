"""Process-pool workers that end when the process that started them is gone.

After `kill -9` of a `prepare` (or the OOM killer), its `ProcessPoolExecutor` workers stayed
forever: every worker holds both ends of the pool's queues, so nothing tells them the parent has
died, and a worker blocks reading a task that never comes or writing a result nobody reads.
Every pool in the package passes `exit_with_parent` as its initializer (or calls it first in its
own): a daemon thread checks once a second whether the worker's parent is still the process that
started the pool, and ends the worker with `os._exit` when it is not (the worker was re-parented).

Why a polling thread rather than Linux's `prctl(PR_SET_PDEATHSIG)`: the death signal follows the
*thread* that forked the worker, not the process. `ProcessPoolExecutor` starts workers from
whichever thread calls `submit` and replaces workers from its manager thread, so a worker would be
killed when that thread ends while the parent lives on. The thread also works outside Linux, needs
no ctypes, and costs one wake-up a second; a worker ends at most about a second after its parent.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

#: How often a worker checks that its parent is alive, in seconds.
CHECK_INTERVAL_S = 1.0
#: The exit status of a worker that ended because its parent was gone.
PARENT_GONE_STATUS = 1

_watching = False


def exit_with_parent(interval_s: float = CHECK_INTERVAL_S) -> None:
    """End this pool worker as soon as its parent process is gone (call first in an initializer).

    Does nothing in a process that multiprocessing did not start, and once per process.
    """
    global _watching
    parent = multiprocessing.parent_process()
    if parent is None or _watching:
        return
    _watching = True
    # The parent's pid is the one recorded when it started this worker, so a parent that died
    # while the worker was still importing is noticed at once (getppid() would name the reaper).
    parent_pid = parent.pid
    if os.getppid() != parent_pid:
        os._exit(PARENT_GONE_STATUS)
    threading.Thread(target=_watch_parent, args=(parent_pid, interval_s), name="exit-with-parent", daemon=True).start()


def _watch_parent(parent_pid: int, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        if os.getppid() != parent_pid:
            os._exit(PARENT_GONE_STATUS)
