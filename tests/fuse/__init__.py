"""Tests of the FUSE wire codec and dispatcher (no I/O)."""
