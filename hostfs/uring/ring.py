"""One io_uring instance driven by raw system calls: setup, submit, reap.

Why raw io_uring_setup(2)/io_uring_enter(2) through ctypes and mmap(2) through
Python's ``mmap``, rather than liburing through ctypes: Debian 12's liburing
2.3 exports setup, submit and wait, but the per-request calls (get an SQE,
prepare it, peek a CQE, mark it seen) are inline functions in liburing.h that
no shared object exports (liburing-ffi arrives with 2.4).  A ctypes user would
have to mirror liburing's private ``struct io_uring`` to reach the rings, so it
would depend on two layouts instead of the kernel's one.  Either way a batch
costs one foreign call (``io_uring_submit`` is a wrapper of io_uring_enter),
so raw calls cost nothing more and add no dependency.

Memory ordering: the kernel reads the SQ tail with a load-acquire and writes
the CQ tail with a store-release (io_uring.h's comment on the rings).  This
side stores each SQE before the tail and loads the CQ tail before the CQEs,
which x86-64 (total store order) keeps in program order without fences; the
engine refuses other architectures (:data:`SUPPORTED_MACHINES`).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform

from hostfs.uring import abi

SUPPORTED_MACHINES = frozenset({"x86_64"})
"""Where plain loads and stores order as io_uring needs (module docstring)."""

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


_UINTS = tuple(ctypes.c_uint(value) for value in range(16))
"""``unsigned int`` arguments of io_uring_enter(2) made once: small SQE counts and
the flags passed here (:data:`abi.ENTER_GETEVENTS`); a call with them took 0.6 us
here against 1.0 us building four ctypes objects each time (best of 5 x 200,000)."""
_NO_SIZE = ctypes.c_size_t(0)
"""``argsz``: no extended argument."""


def address_of(buffer: mmap.mmap | bytearray, offset: int = 0) -> int:
    """The address of ``buffer[offset]``, for the kernel; the buffer must outlive its use."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer, offset))


class Ring:
    """An io_uring with 128-byte SQEs (what URING_CMD for FUSE needs) on one thread.

    ``entries`` SQEs, ``cq_entries`` CQEs (both rounded up to a power of two): the
    caller keeps fewer than ``cq_entries`` operations in flight.
    """

    def __init__(self, entries: int, cq_entries: int) -> None:
        if platform.machine() not in SUPPORTED_MACHINES:
            raise OSError(errno.ENOSYS, f"io_uring rings on {platform.machine()} are not done")
        flags = (
            abi.SETUP_SQE128 | abi.SETUP_CQSIZE | abi.SETUP_COOP_TASKRUN | abi.SETUP_TASKRUN_FLAG
        )
        params = abi.encode_params(flags, cq_entries=cq_entries)
        raw = (ctypes.c_char * len(params)).from_buffer(params)
        fd = _syscall(abi.SYS_IO_URING_SETUP, ctypes.c_uint(entries), raw)
        del raw
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"io_uring_setup: {os.strerror(code)}")
        self.fd = fd
        try:
            self._map(abi.decode_params(params))
        except BaseException:
            os.close(fd)
            raise
        self._unsubmitted = 0

    def _map(self, offsets: abi.RingOffsets) -> None:
        self.offsets = offsets
        protection = mmap.PROT_READ | mmap.PROT_WRITE
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        size = max(offsets.sq_ring_size, offsets.cq_ring_size)
        self._rings = mmap.mmap(self.fd, size, flags, protection, offset=abi.OFF_SQ_RING)
        self._cq_rings = self._rings
        if not offsets.features & abi.FEAT_SINGLE_MMAP:
            self._cq_rings = mmap.mmap(
                self.fd, offsets.cq_ring_size, flags, protection, offset=abi.OFF_CQ_RING
            )
        self._sqes = mmap.mmap(
            self.fd, offsets.sq_entries * abi.SQE_SIZE, flags, protection, offset=abi.OFF_SQES
        )
        self._sq_words = memoryview(self._rings).cast("I")
        self._cq_words = memoryview(self._cq_rings).cast("I")
        self._cq_view = memoryview(self._cq_rings)
        self._sqe_view = memoryview(self._sqes)
        # SQE slot i is always named by array[i]: fill the indirection array once.
        array = offsets.sq_array // 4
        for index in range(offsets.sq_entries):
            self._sq_words[array + index] = index
        self._sq_tail = self._sq_words[offsets.sq_tail // 4]
        self._sq_mask = self._sq_words[offsets.sq_mask // 4]
        self._cq_mask = self._cq_words[offsets.cq_mask // 4]

    def sqe(self) -> memoryview:
        """The next free SQE, to fill before :meth:`submit`."""
        offsets = self.offsets
        head = self._sq_words[offsets.sq_head // 4]
        if (self._sq_tail - head) & 0xFFFFFFFF >= offsets.sq_entries:
            self.submit()
            head = self._sq_words[offsets.sq_head // 4]
            if (self._sq_tail - head) & 0xFFFFFFFF >= offsets.sq_entries:
                raise OSError(errno.EBUSY, "io_uring submission queue full")
        slot = (self._sq_tail & self._sq_mask) * abi.SQE_SIZE
        self._sq_tail = (self._sq_tail + 1) & 0xFFFFFFFF
        self._unsubmitted += 1
        return self._sqe_view[slot : slot + abi.SQE_SIZE]

    def submit(self, *, get_events: bool = False) -> None:
        """Publish the SQEs filled so far and have the kernel take them, and with
        ``get_events`` run pending task work too (which posts completions): one
        system call for both, none when there is nothing to do."""
        count = self._unsubmitted
        if not count:
            if get_events:
                self._enter(0, abi.ENTER_GETEVENTS)
            return
        self._sq_words[self.offsets.sq_tail // 4] = self._sq_tail
        flags = abi.ENTER_GETEVENTS if get_events else 0
        while count:
            count -= self._enter(count, flags)
        self._unsubmitted = 0

    @property
    def unsubmitted(self) -> int:
        """SQEs filled but not yet handed to the kernel."""
        return self._unsubmitted

    def wakes(self) -> bool:
        """Whether entering the kernel now would find something: task work waiting
        (IORING_SQ_TASKRUN) or completions already posted.  Reads shared memory only,
        so a poll loop may call it at no system call's cost."""
        if self.task_work_pending():
            return True
        cq, offsets = self._cq_words, self.offsets
        return bool(cq[offsets.cq_head // 4] != cq[offsets.cq_tail // 4])

    def task_work_pending(self) -> bool:
        """The kernel waits for this thread to enter it (IORING_SQ_TASKRUN)."""
        return bool(self._sq_words[self.offsets.sq_flags // 4] & abi.SQ_TASKRUN)

    def _enter(self, to_submit: int, flags: int) -> int:
        count = _UINTS[to_submit] if to_submit < len(_UINTS) else ctypes.c_uint(to_submit)
        wanted = _UINTS[flags] if flags < len(_UINTS) else ctypes.c_uint(flags)
        while True:
            done: int = _syscall(
                abi.SYS_IO_URING_ENTER, self.fd, count, _UINTS[0], wanted, None, _NO_SIZE
            )
            if done >= 0:
                return done
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, f"io_uring_enter: {os.strerror(code)}")

    def completions(self) -> list[tuple[int, int]]:
        """(user_data, res) of every CQE posted since the last call; frees their slots."""
        offsets = self.offsets
        words = self._cq_words
        head = words[offsets.cq_head // 4]
        tail = words[offsets.cq_tail // 4]
        if head == tail:
            return []
        reaped = []
        mask = self._cq_mask
        view = self._cq_view
        while head != tail:
            user_data, res, _flags = abi.CQE.unpack_from(
                view, offsets.cqes + (head & mask) * abi.CQE.size
            )
            reaped.append((user_data, res))
            head = (head + 1) & 0xFFFFFFFF
        words[offsets.cq_head // 4] = head
        return reaped

    def has_completions(self) -> bool:
        offsets = self.offsets
        return self._cq_words[offsets.cq_head // 4] != self._cq_words[offsets.cq_tail // 4]

    def close(self) -> None:
        """Unmap and close; the kernel cancels whatever is still in flight."""
        if self.fd < 0:
            return
        for view in (self._sq_words, self._cq_words, self._cq_view, self._sqe_view):
            view.release()
        self._sqes.close()
        if self._cq_rings is not self._rings:
            self._cq_rings.close()
        self._rings.close()
        os.close(self.fd)
        self.fd = -1
