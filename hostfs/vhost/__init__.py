"""The vhost-user-fs transport: QEMU's guest memory and virtqueues in, FUSE requests out.

``messages`` (vhost-user codec, no I/O) -> ``channel`` (socket framing + fds) ->
``device`` (message semantics) -> ``ring`` (one queue's task) -> ``virtqueue``
(split ring rules, no I/O) over ``memory`` (the mmap'd guest RAM).  ``server``
owns the socket and the process lifetime.
"""
