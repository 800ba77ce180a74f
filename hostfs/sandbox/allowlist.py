"""The system calls ``hostfs serve`` may make once it serves, each with its reason.

Measured, not guessed: the daemon ran under ``--seccomp log`` with an empty list through
tests/vhost/test_serve_cli.py, tests/sandbox/ (local and NFS backends) and the QEMU guests
of tests/guest/test_smoke.py and test_nfs_share.py; every ``audit: type=1326 ... syscall=N``
the kernel logged is here (x86_64 numbers, named by libseccomp).  Entries marked *code* were
not reached by those runs but are made by code that serves requests (named beside them).
virtiofsd's ``seccomp.rs`` lists much the same set for the same jobs.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    # -- the event loop (trio) and the vhost-user socket
    "epoll_create1": "trio's I/O manager",
    "epoll_ctl": "trio registers the socket, eventfds and its wake-up pipe",
    "epoll_wait": "trio waits for kicks, messages and timers",
    "poll": "libnfs waits on its sockets (hostfs.backends.nfs.loop)",
    "pselect6": "an NFS call on the loop waits for its reply and trio's epoll fd at once "
    "(select.select, hostfs.backends.nfs.idle)",
    "read": "kick eventfds, the wake-up socketpair",
    "write": "call eventfds, the log on stderr, trio's wake-up",
    "recvfrom": "trio's wake-up socketpair",
    "recvmsg": "vhost-user messages with their fds (SCM_RIGHTS)",
    "sendto": "vhost-user replies, trio's wake-up",
    "sendmsg": "*code*: socket.sendmsg for replies with descriptors (hostfs.vhost.channel)",
    "accept4": "a front-end connects",
    "socketpair": "trio's wake-up channel",
    "getsockname": "trio inspects the sockets it is given",
    "getsockopt": "SO_ACCEPTCONN (--fd), libnfs's SO_ERROR after connect",
    "setsockopt": "trio and libnfs set socket options",
    "shutdown": "*code*: trio closes sockets",
    "fcntl": "O_NONBLOCK, F_GETFL; F_OFD_SETLK/GETLK: guest record locks as host OFD locks "
    "(backends/local/host_locks.py); F_ADD_SEALS (guest memfds)",
    "ioctl": "FIONBIO and the like (trio, Python's io)",
    "close": "every descriptor: FORGET, RELEASE, disconnect",
    "dup": "*code*: os.dup of a handle (hostfs.backends.local)",
    "mmap": "guest memory regions (SET_MEM_TABLE), Python's allocator",
    "munmap": "guest memory released on disconnect, Python's allocator",
    "mprotect": "thread stacks' guard pages, the allocator",
    "madvise": "glibc returns freed memory",
    "brk": "*code*: glibc's malloc grows the heap",
    "mremap": "*code*: glibc's realloc of large buffers",
    "futex": "the GIL, locks between trio and worker threads",
    "clone3": "worker threads (--thread-pool-size, trio.to_thread, the NFS context pool)",
    "clone": "*code*: glibc falls back to clone when clone3 is refused",
    "set_robust_list": "every new thread (glibc)",
    "rseq": "every new thread (glibc 2.35+)",
    "exit": "a worker thread ends",
    "exit_group": "the daemon ends",
    "gettid": "threads and logging",
    "getpid": "the FUSE client's pid checks, logging",
    "geteuid": "the local backend asks whether it runs as root",
    "getuid": "the NFS backend's default owner",
    "getgid": "the NFS backend's default owner",
    "prctl": "Python names threads; capability checks",
    "prlimit64": "the local backend lifts RLIMIT_NOFILE (as virtiofsd)",
    "rt_sigaction": "trio installs its SIGTERM/SIGINT handlers",
    "rt_sigprocmask": "threads block signals (Python's threading)",
    "rt_sigreturn": "a signal handler returns (SIGTERM)",
    "tgkill": "raise(3): trio re-delivers a SIGTERM that reaches its closed signal receiver "
    "(a front-end gone, the daemon on its way out); the daemon's own pid namespace holds "
    "nothing else to signal",
    "sigaltstack": "*code*: Python's faulthandler and new threads",
    "clock_gettime": "*code*: the vDSO's fallback",
    "clock_nanosleep": "*code*: time.sleep in retry paths",
    "nanosleep": "*code*: as clock_nanosleep, older glibc paths",
    "sched_yield": "*code*: glibc's spin locks",
    "getrandom": "*code*: Python's hash seed and random, for threads made late",
    "lseek": "SEEK_DATA/SEEK_HOLE (LSEEK), Python's io",
    # -- the NFS backend's network (libnfs)
    "socket": "libnfs connects to the NFS server (reconnects after a server restart too)",
    "connect": "libnfs connects to the NFS server",
    "bind": "libnfs binds its socket (a reserved port when root)",
    # -- file system requests of the local backend
    "openat": "OPEN, CREATE, re-opening O_PATH nodes through /proc/self/fd/N",
    "openat2": "LOOKUP with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS",
    "newfstatat": "GETATTR, LOOKUP (fstatat with AT_EMPTY_PATH)",
    "statx": "*code*: Python's os.stat where glibc prefers statx",
    "fstat": "*code*: fstat of an open handle",
    "fstatfs": "STATFS (fstatvfs)",
    "statfs": "STATFS through /proc/self/fd/N",
    "getdents64": "READDIR, READDIRPLUS (os.scandir and the local helper's reader)",
    "readlinkat": "READLINK",
    "readlink": "the kick/call/err eventfd check, a migrated node's path (/proc/self/fd/N)",
    "mkdirat": "MKDIR",
    "mknodat": "*code*: MKNOD (fifo, socket, devices as root)",
    "symlinkat": "SYMLINK",
    "linkat": "LINK (AT_EMPTY_PATH and through /proc/self/fd/N)",
    "unlinkat": "UNLINK, RMDIR",
    "unlink": "--sandbox none removes its socket on exit (sandboxed, the supervisor does)",
    "renameat": "RENAME",
    "renameat2": "*code*: RENAME2 with NOREPLACE/EXCHANGE",
    "chmod": "SETATTR mode through /proc/self/fd/N",
    "fchmod": "*code*: SETATTR mode on a handle",
    "fchmodat": "*code*: os.chmod with dir_fd",
    "fchownat": "SETATTR uid/gid (AT_EMPTY_PATH)",
    "fchown": "*code*: SETATTR uid/gid on a handle",
    "truncate": "*code*: SETATTR size through /proc/self/fd/N",
    "ftruncate": "SETATTR size on a handle, O_TRUNC",
    "utimensat": "SETATTR atime/mtime",
    "pread64": "*code*: READ (os.pread)",
    "pwrite64": "*code*: WRITE (os.pwrite)",
    "preadv2": "READ into guest memory (os.preadv)",
    "pwritev2": "WRITE from guest memory (os.pwritev)",
    "preadv": "*code*: os.preadv without flags on older glibc",
    "pwritev": "*code*: os.pwritev without flags on older glibc",
    "fsync": "*code*: FSYNC, FSYNCDIR",
    "fdatasync": "*code*: FSYNC with the datasync flag",
    "syncfs": "SYNCFS",
    "fallocate": "*code*: FALLOCATE",
    "copy_file_range": "*code*: COPY_FILE_RANGE",
    "setxattr": "SETXATTR through /proc/self/fd/N",
    "getxattr": "GETXATTR (and ACL checks)",
    "listxattr": "*code*: LISTXATTR",
    "removexattr": "*code*: REMOVEXATTR",
    "flock": "guest flock locks as host flock(2) on per-owner descriptions "
    "(backends/local/host_locks.py; tests/guest/test_two_guest_locks.py)",
    # -- per-request credentials and file handles (hostfs.backends.local.credentials)
    "setfsuid": "*code*: the caller's uid for each request, as virtiofsd",
    "setfsgid": "*code*: the caller's gid for each request, as virtiofsd",
    "setgroups": "*code*: the caller's supplementary groups (per thread, raw syscall)",
    "getgroups": "the daemon's own groups, put back after a caller's (credentials.acting_as); "
    "reached by a guest caller other than root (tests/sandbox/test_user_namespace.py)",
    "capget": "*code*: per-thread capability changes (FSETID around writes)",
    "capset": "*code*: per-thread capability changes (FSETID around writes)",
    "name_to_handle_at": "*code*: file handles of nodes (as virtiofsd --inode-file-handles)",
    "open_by_handle_at": "*code*: re-opening a node from its file handle",
}

ALLOWED: tuple[str, ...] = tuple(REASONS)
