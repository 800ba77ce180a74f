# Interactive: a shell on the serial console in the mounted share; exit powers off.
echo "virtio-fs share mounted on $HOSTFS_MNT; 'exit' powers the guest off"
cd "$HOSTFS_MNT" && setsid cttyhack sh
