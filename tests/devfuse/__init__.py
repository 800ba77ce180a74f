"""Tests of the /dev/fuse transport against the host kernel."""
