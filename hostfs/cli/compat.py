"""virtiofsd's legacy ``-o a,b=c`` options, as libvirt builds them.

libvirt 9.0 (``src/qemu/qemu_virtiofs.c``, ``qemuVirtioFSBuildCommandLine``)
starts the daemon as ``--fd=N -o source=DIR[,cache=MODE][,sandbox=MODE]
[,xattr|no_xattr][,flock|no_flock][,posix_lock|no_posix_lock]``; newer libvirt
does so for every binary that does not print ``separate-options``.  Each word is
folded into the long flag of the same meaning; a long flag given as well wins.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from hostfs.core.options import CACHE_POLICIES
from hostfs.sandbox import SANDBOX_MODES


class CompatOptionError(ValueError):
    """A ``-o`` word hostfs does not know or will not honour; the message names it."""


CACHE_ALIASES = {"none": "never"}
"""C virtiofsd and libvirt's ``<cache mode='none'/>`` say ``none`` for ``never``."""

REFUSED = {
    "posix_acl": "POSIX ACLs are not implemented (no FUSE_POSIX_ACL)",
    "announce_submounts": "submounts are not announced (no FUSE_SUBMOUNTS)",
}
"""Words virtiofsd accepts whose meaning hostfs does not have; ``no_*`` of each is
what hostfs does anyway, so those are accepted."""


def split_options(text: str) -> list[str]:
    """Split on ``,``; ``,,`` is one literal comma (QEMU's option escaping, which
    libvirt's ``virQEMUBuildBufferEscapeComma`` applies to ``source=``)."""
    words, word, i = [], [], 0
    while i < len(text):
        if text[i] == "," and text[i + 1 : i + 2] == ",":
            word.append(",")
            i += 2
            continue
        if text[i] == ",":
            words.append("".join(word))
            word = []
        else:
            word.append(text[i])
        i += 1
    words.append("".join(word))
    return [w for w in words if w]


def _set(name: str, value: object) -> Callable[[argparse.Namespace], None]:
    def apply(args: argparse.Namespace) -> None:
        if getattr(args, name, None) is None:
            setattr(args, name, value)

    return apply


SWITCHES: dict[str, tuple[str, bool]] = {
    # word: (attribute of the long flag, value); no_* is the same flag turned off
    "xattr": ("xattr", True),
    "writeback": ("writeback", True),
    "posix_lock": ("posix_lock", True),
    "flock": ("flock", True),
    "readdirplus": ("readdirplus", True),
    "allow_direct_io": ("allow_direct_io", True),
    "killpriv_v2": ("killpriv_v2", True),
}


def apply_compat_options(args: argparse.Namespace) -> None:
    """Fold every ``-o`` of ``args.compat_options`` into ``args``."""
    for chunk in args.compat_options:
        for word in split_options(chunk):
            try:
                _apply(args, word)
            except CompatOptionError as error:
                raise CompatOptionError(f"-o {word}: {error}") from None


def _apply(args: argparse.Namespace, word: str) -> None:
    key, equals, value = word.partition("=")
    if not equals:
        negated = key.startswith("no_")
        base = key[3:] if negated else key
        if base in SWITCHES:
            name, on = SWITCHES[base]
            _set(name, on != negated)(args)
        elif base in REFUSED and not negated:
            raise CompatOptionError(REFUSED[base])
        elif base in REFUSED:
            pass  # what hostfs does anyway
        else:
            raise CompatOptionError("unknown option")
        return
    if not value:
        raise CompatOptionError("empty value")
    if key == "source":
        _set("shared_dir", value)(args)
    elif key == "cache":
        policy = CACHE_ALIASES.get(value, value)
        if policy not in CACHE_POLICIES:
            raise CompatOptionError(f"cache must be one of {', '.join(_cache_words())}")
        _set("cache", policy)(args)
    elif key == "xattrmap":
        _set("xattrmap", value)(args)
    elif key == "sandbox" and hasattr(args, "sandbox"):
        if value not in SANDBOX_MODES:
            raise CompatOptionError(f"sandbox must be one of {', '.join(SANDBOX_MODES)}")
        _set("sandbox", value)(args)  # libvirt's <sandbox mode=.../>
    elif key == "modcaps" and hasattr(args, "modcaps"):
        _set("modcaps", value)(args)
    else:
        raise CompatOptionError("unknown option")


def _cache_words() -> list[str]:
    return sorted([*CACHE_POLICIES, *CACHE_ALIASES])
