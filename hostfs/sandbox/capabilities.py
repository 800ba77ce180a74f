"""Keep only the capabilities serving needs; drop every other one for good.

virtiofsd (``main.rs``, ``drop_capabilities``) keeps CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
SETGID, SETUID, MKNOD and SETFCAP, plus DAC_READ_SEARCH when it uses file handles
(open_by_handle_at(2) requires it); ``--modcaps=+cap:-cap`` edits that list.  The rest
leave the effective, permitted and inheritable sets (capset(2)), the bounding set
(PR_CAPBSET_DROP) and the ambient set, so neither this process nor anything it could run
gets them back.  A compromised daemon keeps no CAP_SYS_ADMIN (no mount, no setns), no
CAP_SYS_PTRACE, no CAP_NET_ADMIN, no CAP_SYS_MODULE.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hostfs import libc
from hostfs.devfuse.capabilities import get_capabilities, set_capabilities

NAMES = (
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
)
"""linux/capability.h, in number order (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40)."""
NUMBERS = {name: number for number, name in enumerate(NAMES)}

SERVING = ("chown", "dac_override", "fowner", "fsetid", "setgid", "setuid", "mknod", "setfcap")
"""virtiofsd 1.13's list: changing owners and modes of any file, creating device nodes,
setting file capabilities, and switching fsuid/fsgid per request."""
FILE_HANDLES = "dac_read_search"
"""virtiofsd adds it for --inode-file-handles; hostfs keeps it for open_by_handle_at(2)."""


class CapabilityError(Exception):
    """Bad --modcaps, or the capabilities cannot be set; one line for the user."""


def serving_capabilities(modcaps: str | None = None) -> frozenset[int]:
    """The capabilities to keep: virtiofsd's list, edited by ``--modcaps`` (``+a:-b``)."""
    keep = {NUMBERS[name] for name in (*SERVING, FILE_HANDLES)}
    for item in filter(None, (modcaps or "").split(":")):
        sign, name = item[:1], item[1:].lower().removeprefix("cap_")
        if sign not in ("+", "-") or name not in NUMBERS:
            raise CapabilityError(f"--modcaps: {item!r} is not +CAP or -CAP (e.g. +sys_admin)")
        (keep.add if sign == "+" else keep.discard)(NUMBERS[name])
    return frozenset(keep)


def keep_only(keep: Iterable[int]) -> None:
    """Drop every capability not in ``keep`` from every set of this process."""
    keep = frozenset(keep)
    for number in range(len(NAMES)):
        if number not in keep and libc.prctl(libc.PR_CAPBSET_READ, number) == 1:
            # Needs CAP_SETPCAP, still effective until the capset below.
            _drop_bounding(number)
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    sets = get_capabilities()
    missing = [NAMES[number] for number in sorted(keep) if not _has(sets, number)]
    if missing:
        raise CapabilityError(f"capabilities not held, cannot keep them: {', '.join(missing)}")
    for word in range(2):
        mask = sum(1 << (n - 32 * word) for n in keep if n // 32 == word)
        sets[word].effective &= mask
        sets[word].permitted &= mask
        sets[word].inheritable &= mask
    set_capabilities(sets)


def _drop_bounding(number: int) -> None:
    try:
        libc.prctl(libc.PR_CAPBSET_DROP, number)
    except OSError as error:
        raise CapabilityError(f"cannot drop cap_{NAMES[number]}: {error.strerror}") from None


def _has(sets: Any, number: int) -> bool:
    word, bit = divmod(number, 32)
    return bool(sets[word].permitted & (1 << bit))
