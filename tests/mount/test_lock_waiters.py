"""More lock waiters than the daemon serves requests at once must not deadlock it.

A transport serves a bounded number of requests at once (devfuse: 16 workers).
Each blocked F_SETLKW is a request in flight; were it to keep its slot, 40
waiters would leave no slot to read the unlock that wakes them
(hostfs.fuse.parking).
"""

from __future__ import annotations

import fcntl
import os
import time

WAITERS = 40
DEADLINE = 20.0


def test_more_setlkw_waiters_than_slots_all_get_the_lock(twin):
    path = os.path.join(twin.mnt, "contended")
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(holder, fcntl.LOCK_EX)
    waiters = []
    for _ in range(WAITERS):
        pid = os.fork()
        if pid == 0:
            fd = os.open(path, os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX)
            fcntl.lockf(fd, fcntl.LOCK_UN)
            os._exit(0)
        waiters.append(pid)
    time.sleep(1.0)  # every waiter is now blocked in F_SETLKW
    fcntl.lockf(holder, fcntl.LOCK_UN)
    os.close(holder)
    deadline = time.monotonic() + DEADLINE
    done = {}
    while len(done) < WAITERS and time.monotonic() < deadline:
        for pid in waiters:
            if pid not in done:
                finished, status = os.waitpid(pid, os.WNOHANG)
                if finished:
                    done[pid] = status
        time.sleep(0.05)
    for pid in set(waiters) - set(done):
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert len(done) == WAITERS, f"{WAITERS - len(done)} waiters never got the lock"
    assert all(os.waitstatus_to_exitcode(status) == 0 for status in done.values())
