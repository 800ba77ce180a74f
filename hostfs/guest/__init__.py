"""Real-guest testing: build a tiny Linux image, boot it under QEMU on a virtio-fs share.

``kernel`` fetches Debian's cloud kernel, ``modinfo``/``modules`` order its
virtio-fs modules, ``cpio``/``initramfs`` pack busybox, the modules and a
workload from ``guest-images/``, ``qemu`` boots it against ``daemons``
(hostfs serve or virtiofsd), ``console`` reads the results, ``bench``
compares the daemons.
"""
