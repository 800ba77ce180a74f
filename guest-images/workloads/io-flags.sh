# Direct I/O and shared mmap on the share, and on a second share when HOSTFS_IO_TAG
# names one (mounted at /io). What each step gives depends on the daemon's
# --allow-direct-io and --allow-mmap, which only the host knows: the guest reports,
# the host judges (tests/guest/test_libvirt.py). Needs /usr/bin/hostfs-io.
# While `hostfs-io direct-hold` keeps FILE open with O_DIRECT the host reads the
# daemon's descriptor flags (and its SIGUSR1 request table: were locks sent?), then
# creates FILE.go to let the guest go on.

. /checks.sh

io_steps() {
    share=$1
    d=$2/io-flags
    mkdir -p "$d"
    check "$share-dd-direct-write" dd if=/dev/urandom of="$d/direct.bin" bs=4096 count=16 oflag=direct
    echo "HOSTFS-RESULT $share-direct-md5 $(md5sum < "$d/direct.bin" | cut -d' ' -f1)"
    check "$share-dd-direct-read" sh -c \
        "dd if='$d/direct.bin' of=/dev/null bs=4096 iflag=direct 2>&1 | grep -q '^16+0 records in'"
    # Locks and xattrs: whether the daemon saw them depends on <lock> and xattr='on'.
    check "$share-locks" hostfs-io locks "$d/direct.bin"
    if setfattr -n user.hostfs -v "$share" "$d/direct.bin" 2>/dev/null; then
        echo "HOSTFS-RESULT $share-setxattr ok"
    else
        echo "HOSTFS-RESULT $share-setxattr refused"
    fi
    check "$share-direct-hold" hostfs-io direct-hold "$d/held.bin" "$d/held.bin.go"
    check "$share-mmap-file" dd if=/dev/zero of="$d/mapped.bin" bs=4096 count=1
    echo "HOSTFS-RESULT $share-mmap $(hostfs-io mmap-write "$d/mapped.bin" paged)"
}

io_steps share "$HOSTFS_MNT"
if [ -n "$HOSTFS_IO_TAG" ]; then
    mkdir -p /io
    if mount -t virtiofs "$HOSTFS_IO_TAG" /io; then
        io_steps io /io
        umount /io || failures=$((failures + 1))
    else
        echo "HOSTFS-CHECK mount-$HOSTFS_IO_TAG FAIL"
        failures=$((failures + 1))
    fi
fi
exit $failures
