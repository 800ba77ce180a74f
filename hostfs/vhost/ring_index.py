"""16-bit ring fields shared with the driver: each read and written in one access.

``avail->idx``, ``used->idx``, ``used_event``, ``avail_event`` and the ring
flags change while the other side reads them from another CPU, so a read
must never see half an update.  ``struct.pack_into("<H")`` and
``unpack_from`` do not give that: CPython's standard-size packers move one
byte at a time (``_struct.c``, ``lp_uint``/``lu_uint``), so a driver reading
``used->idx`` as it goes from 0x12FF to 0x1300 can see 0x1200 and take 255
stale entries for completions (Linux: "id %u is not a head!", the queue is
marked broken).  An item of a memoryview cast to ``"H"`` is one aligned
``unsigned short`` memcpy in ``memoryobject.c`` (``PACK_SINGLE``/
``UNPACK_SINGLE``): a single 16-bit load or store, atomic on x86 for the
2-byte aligned fields virtio 1.2 §2.7 requires (avail ring 2-aligned, used
ring 4-aligned; a driver that misaligns them only tears its own view).
Native order is virtio's little endian on the hosts hostfs runs on.
"""

from __future__ import annotations

import sys


def u16_fields(view: memoryview) -> memoryview:
    """``view`` as native 16-bit words: ``fields[offset // 2]`` is the field at ``offset``."""
    if sys.byteorder != "little":
        raise RuntimeError("virtio rings are little endian; this host is not")
    return view.cast("B").cast("H")
