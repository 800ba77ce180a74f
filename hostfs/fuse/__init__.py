"""The FUSE wire protocol, shared by every transport that carries raw FUSE bytes.

- :mod:`abi`: opcodes, flags and struct layouts of ``<linux/fuse.h>``;
- :mod:`requests`: bytes -> typed requests (never raises);
- :mod:`replies`: typed values -> bytes in a reply buffer;
- :mod:`init`: INIT negotiation and the session limits hostfs announces;
- :mod:`scatter`: byte ranges over a list of buffers (virtqueue chains);
- :mod:`dispatcher`: one request end to end against the core;
- :mod:`stats`: per-opcode counters.
"""
