"""Pool workers end when their parent is killed (`kill -9` of `prepare` left them hanging)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.helpers import ENV, prepare_command


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux: /proc/<pid>/task/<tid>/children of every thread)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its new parent to reap it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_and_wait_for_workers(parent: subprocess.Popen, workers: set[int], seconds: float = 15.0) -> set[int]:
    """SIGKILL `parent`; the workers still alive after `seconds` (killed here, so none is left behind)."""
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid for pid in workers if alive(pid)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_prepare_workers_exit_when_prepare_is_killed(tiny_corpus, tmp_path):
    """The field report: kill -9 a real `prepare` while its pool extracts features; every worker
    (blocked on a pipe to the dead parent) must be gone within 15 s."""
    cache = tmp_path / "cache"
    prepare = subprocess.Popen(
        prepare_command(tiny_corpus, "--data.prepare_workers=2", f"--data.cache_dir={cache}"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The first finished chunk: both workers have started and hold further chunks.
        wait_for(lambda: list(cache.glob("*/parts/part-*.npz")) or prepare.poll() is not None, 120, "a finished chunk")
        workers = children(prepare.pid)
        assert prepare.poll() is None, "prepare finished before it could be killed"
    except BaseException:
        prepare.kill()
        prepare.wait()
        raise
    assert len(workers) >= 2, workers  # two workers (and multiprocessing's resource tracker)
    left = kill_and_wait_for_workers(prepare, workers)
    assert not left, f"workers {sorted(left)} still ran 15 s after their parent was killed"


POOL_SCRIPT = textwrap.dedent(
    """
    import time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from avdisentangle.workers import exit_with_parent

    if __name__ == "__main__":
        with ProcessPoolExecutor(2, mp_context=get_context("spawn"), initializer=exit_with_parent) as pool:
            futures = [pool.submit(time.sleep, 600) for _ in range(4)]  # two run, two wait in the queue
            print("ready", flush=True)
            time.sleep(600)
    """
)


def test_idle_pool_workers_exit_when_parent_is_killed(tmp_path):
    """The synthetic corpus writer's and the report's pools use the same initializer: workers busy
    in a task, or waiting for one, end after their parent is killed."""
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        time.sleep(1.0)  # let the workers start their tasks
        workers = children(parent.pid)
        assert len(workers) >= 2, workers  # two workers (and multiprocessing's resource tracker)
    except BaseException:
        parent.kill()
        parent.wait()
        raise
    left = kill_and_wait_for_workers(parent, workers, seconds=10.0)
    assert not left, f"workers {sorted(left)} still ran 10 s after their parent was killed"
