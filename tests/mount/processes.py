"""Run a step in a forked child process: as another user, or alongside the test.

A child is the only way to be a different caller (uid/gid, lock owner) for
the mount: FUSE takes the credentials and the lock owner from the process.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

CHILD_TIMEOUT = 20.0
REAP_TIMEOUT = 2.0


class Child:
    """A forked child running one function; its return value or errno comes back pickled."""

    def __init__(
        self,
        function: Callable[..., Any],
        *args: Any,
        setup: Callable[[], None] | None = None,
    ) -> None:
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            os.close(read_end)
            _run_child(write_end, function, args, setup)
        os.close(write_end)
        self._pipe = read_end
        self._result: tuple[str, Any] | None = None

    def finished(self, timeout: float = 0.0) -> bool:
        """True once the child has sent its result (waiting at most ``timeout``)."""
        if self._result is None and select.select([self._pipe], [], [], timeout)[0]:
            self._collect()
        return self._result is not None

    def result(self, timeout: float = CHILD_TIMEOUT) -> Any:
        """The child's return value; its OSError is raised again here with the same errno."""
        if not self.finished(timeout):
            self._abandon()
            raise AssertionError(f"child {self.pid} did not finish within {timeout} s")
        kind, value = self._result
        if kind == "error":
            raise OSError(value, os.strerror(value))
        if kind == "crash":
            raise AssertionError(f"child failed: {value}")
        return value

    def _abandon(self) -> None:
        """Kill the child; reap it if it dies soon.  A child blocked in a FUSE
        request the daemon never answers cannot die until the mount goes away:
        the test must fail rather than wait for it."""
        os.kill(self.pid, signal.SIGKILL)
        os.close(self._pipe)
        self._result = ("crash", "abandoned")
        deadline = time.monotonic() + REAP_TIMEOUT
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _collect(self) -> None:
        chunks = []
        while chunk := os.read(self._pipe, 65536):
            chunks.append(chunk)
        os.close(self._pipe)
        os.waitpid(self.pid, 0)
        self._result = pickle.loads(b"".join(chunks)) if chunks else ("crash", "no result")


def _run_child(pipe: int, function: Callable[..., Any], args: tuple, setup) -> None:
    status = 0
    try:
        if setup is not None:
            setup()
        result: tuple[str, Any] = ("ok", function(*args))
    except OSError as error:
        result = ("error", error.errno)
    except BaseException as error:
        result = ("crash", repr(error))
        status = 1
    try:
        data = pickle.dumps(result)
        while data:
            data = data[os.write(pipe, data) :]
    finally:
        os._exit(status)


def as_user(
    uid: int, gid: int, function: Callable[[str], Any], base: str, groups: Sequence[int] = ()
) -> Any:
    """``function(".")`` run by ``uid``/``gid`` (and supplementary ``groups``) with
    ``base`` as working directory.

    The child enters ``base`` while still root: pytest's temporary directories
    sit under a 0700 directory that another user could not walk through.
    """

    def become_user() -> None:
        os.chdir(base)
        os.setgroups(list(groups))
        os.setgid(gid)
        os.setuid(uid)

    return Child(function, ".", setup=become_user).result()


def run_together(functions: list[Callable[[], Any]], timeout: float = CHILD_TIMEOUT) -> list:
    """Run each function in its own process at the same time; their results in order."""
    children = [Child(function) for function in functions]
    deadline = time.monotonic() + timeout
    return [child.result(max(0.0, deadline - time.monotonic())) for child in children]


def in_other_process(function, path: str, holder_fd: int | None = None) -> Child:
    """``function(fd)`` in a child, on the child's own open file description.

    The child closes its inherited copy of the holder's descriptor first: a
    flock belongs to the open file, and a copy would keep it alive.
    """

    def run():
        if holder_fd is not None:
            os.close(holder_fd)
        fd = os.open(path, os.O_RDWR)
        try:
            return function(fd)
        finally:
            os.close(fd)

    return Child(run)
