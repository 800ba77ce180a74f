"""The FUSE wire protocol, shared by every transport that carries raw FUSE bytes.

- :mod:`abi`: opcodes, flags and struct layouts of ``<linux/fuse.h>``;
- :mod:`requests`: bytes -> typed requests (never raises), read through :mod:`args`;
- :mod:`operations`: the dispatch table, opcode -> (decoder, handler, reply kind);
- :mod:`session`: the session's states (awaiting INIT, running);
- :mod:`ratelimit`: log lines a guest can cause, rate-limited;
- :mod:`replies`: typed values -> bytes in a reply buffer;
- :mod:`init`: INIT negotiation and the session limits hostfs announces;
- :mod:`scatter`: byte ranges over a list of buffers (virtqueue chains);
- :mod:`dispatcher`: one request end to end against the core;
- :mod:`stats`: per-opcode counters.
"""
