"""A simulated guest: a vhost-user front-end and virtio-fs driver written in Python."""
