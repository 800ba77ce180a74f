"""hostfs: a virtio-fs device backend in Python."""
