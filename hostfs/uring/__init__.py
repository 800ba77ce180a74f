"""FUSE over io_uring: hostfs's own codec on the kernel's FUSE rings (Linux >= 6.14)."""
