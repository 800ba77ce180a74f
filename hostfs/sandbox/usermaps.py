"""``--uid-map`` / ``--gid-map``: an unprivileged daemon in a user namespace of its own.

virtiofsd 1.13 (``--help``, ``src/idmap.rs``, ``src/sandbox.rs``): started by an ordinary
user, ``--sandbox namespace`` adds CLONE_NEWUSER to its namespaces, maps ids into it
(``:namespace_uid:host_uid:count:``, the first and last character being the separator; its
default is the user's own uid and gid, mapped to themselves) and becomes uid/gid 0 there.
Inside, the daemon holds every capability *over its own namespaces* and none over the host
(user_namespaces(7)): its per-request fsuid/fsgid switch (``hostfs.backends.local
.credentials``) then creates files as whatever host ids the map gives, e.g. a guest's root
as the user who started it.  An id the map does not cover cannot be taken (setfsuid(2)
refuses it), so such a guest caller gets an errno, never a file owned by someone else.

How the maps get written (user_namespaces(7), "Defining user and group ID mappings"):

- one id each, the user's own uid and gid: the process writes its own ``uid_map`` after
  ``setgroups`` is set to ``deny``, with no help;
- anything else (ranges, other host ids): only a process with CAP_SETUID/CAP_SETGID in the
  parent namespace may, i.e. shadow's setuid ``newuidmap``/``newgidmap`` (Debian's
  ``uidmap`` package), which check ``/etc/subuid`` and ``/etc/subgid``.  As virtiofsd, a
  helper forked before the unshare, so still outside, runs them on the daemon's pid.
  (virtiofsd uses the helpers for the single own-id case too; hostfs needs them only
  where the kernel does.)
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass

from hostfs import libc

_ID_LIMIT = 1 << 32
"""uid_t and gid_t are 32 bits wide."""

NEWUIDMAP = "newuidmap"
NEWGIDMAP = "newgidmap"


class UserMapError(ValueError):
    """A malformed --uid-map/--gid-map, or maps that cannot be set; one line for the user."""


@dataclass(frozen=True, slots=True)
class IdRange:
    """``count`` ids from ``inside`` in the namespace are host ids from ``outside``."""

    inside: int
    outside: int
    count: int

    @classmethod
    def parse(cls, text: str) -> IdRange:
        """virtiofsd's ``:inside:outside:count:``: the last character, not a letter nor a
        digit, separates the three numbers and must also begin the value."""
        if len(text) < 2 or text[-1].isalnum() or text[0] != text[-1]:
            raise UserMapError(f"{text!r} is not :namespace_id:host_id:count:")
        fields = text[1:-1].split(text[-1])
        if len(fields) != 3 or not all(field.isdigit() for field in fields):
            raise UserMapError(f"{text!r} is not :namespace_id:host_id:count:")
        inside, outside, count = (int(field) for field in fields)
        if count < 1 or inside + count > _ID_LIMIT or outside + count > _ID_LIMIT:
            raise UserMapError(f"{text!r}: ids must be 0 to {_ID_LIMIT - 1}, count at least 1")
        return cls(inside, outside, count)

    def line(self) -> str:
        """The range as ``/proc/PID/uid_map`` takes it."""
        return f"{self.inside} {self.outside} {self.count}\n"

    def arguments(self) -> list[str]:
        """The range as newuidmap(1) takes it, after the pid."""
        return [str(self.inside), str(self.outside), str(self.count)]

    def covers(self, inside: int) -> bool:
        return self.inside <= inside < self.inside + self.count


@dataclass(frozen=True, slots=True)
class UserMaps:
    """What to write into the new user namespace."""

    uid: IdRange
    gid: IdRange

    @classmethod
    def for_caller(cls, uid_map: IdRange | None, gid_map: IdRange | None) -> UserMaps:
        """The maps given, each defaulting as virtiofsd's: the caller's own id, to itself."""
        uid, gid = os.geteuid(), os.getegid()
        return cls(uid_map or IdRange(uid, uid, 1), gid_map or IdRange(gid, gid, 1))

    def needs_helpers(self) -> bool:
        """Whether the kernel lets this process write the maps itself: one id each, its own."""
        own = IdRange(self.uid.inside, os.geteuid(), 1), IdRange(self.gid.inside, os.getegid(), 1)
        return (self.uid, self.gid) != own


def enter_user_namespace(maps: UserMaps, also: int) -> None:
    """unshare(CLONE_NEWUSER | ``also``), map ``maps`` and become uid/gid 0 inside if 0 is
    mapped (virtiofsd's setresuid(0, 0, 0)); UserMapError with one line otherwise."""
    helper = _MapHelper(maps) if maps.needs_helpers() else None
    try:
        libc.unshare(libc.CLONE_NEWUSER | also)
    except OSError as error:
        if helper is not None:
            helper.cancel()
        raise UserMapError(_unshare_failure(error)) from None
    if helper is not None:
        helper.map()
    else:
        _write_own_maps(maps)
    if maps.gid.covers(0):
        os.setresgid(0, 0, 0)
    if maps.uid.covers(0):
        os.setresuid(0, 0, 0)


def _unshare_failure(error: OSError) -> str:
    hint = {
        errno.EPERM: "unprivileged user namespaces refused here (a container, a chroot, "
        "kernel.apparmor_restrict_unprivileged_userns)",
        errno.ENOSPC: "user namespaces disabled (user.max_user_namespaces)",
        errno.EUSERS: "too deeply nested user namespaces",
        errno.EINVAL: "user namespaces not built into this kernel",
    }.get(error.errno or 0, "")
    suffix = f": {hint}" if hint else ""
    reason = os.strerror(error.errno or 0)
    return f"cannot create a user namespace as uid {os.geteuid()}: {reason}{suffix}"


def _write_own_maps(maps: UserMaps) -> None:
    try:
        # setgroups must be denied before an unprivileged gid_map (user_namespaces(7)).
        _write("/proc/self/setgroups", "deny\n")
        _write("/proc/self/uid_map", maps.uid.line())
        _write("/proc/self/gid_map", maps.gid.line())
    except OSError as error:
        raise UserMapError(f"cannot write {error.filename}: {error.strerror}") from None


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None
    finally:
        os.close(fd)


class _MapHelper:
    """A child left outside the new namespace, to run newuidmap/newgidmap on its parent.

    Forked before the unshare; it waits for a byte on one pipe, maps its parent, and
    reports on the other: nothing on success, one line of error otherwise.
    """

    def __init__(self, maps: UserMaps) -> None:
        go_read, self._go = os.pipe()
        self._result, result_write = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - the helper ends in os._exit
            os.close(self._go)
            os.close(self._result)
            code = _run_helper(maps, go_read, result_write)
            os._exit(code)
        os.close(go_read)
        os.close(result_write)

    def cancel(self) -> None:
        os.close(self._go)  # end of file: the helper exits without mapping
        os.close(self._result)
        os.waitpid(self._pid, 0)

    def map(self) -> None:
        os.write(self._go, b"m")
        os.close(self._go)
        report = b""
        while chunk := os.read(self._result, 4096):
            report += chunk
        os.close(self._result)
        os.waitpid(self._pid, 0)
        if report:
            raise UserMapError(report.decode(errors="replace"))


def _run_helper(maps: UserMaps, go: int, result: int) -> int:  # pragma: no cover - forked
    if os.read(go, 1) != b"m":
        return 0
    pid = str(os.getppid())
    for program, idrange in ((NEWUIDMAP, maps.uid), (NEWGIDMAP, maps.gid)):
        try:
            done = subprocess.run(
                [program, pid, *idrange.arguments()], capture_output=True, text=True, check=False
            )
        except OSError as error:
            message = f"cannot run {program}: {error.strerror} (Debian's uidmap package has it)"
        else:
            if done.returncode == 0:
                continue
            lines = (done.stderr or done.stdout).strip().splitlines() or ["failed"]
            message = f"{program} {pid} {' '.join(idrange.arguments())}: {lines[-1]}"
        os.write(result, message.encode())
        return 1
    return 0
