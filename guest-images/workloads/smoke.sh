# Functional smoke test of the virtio-fs share, run by the guest's /init.
# Prints HOSTFS-CHECK / HOSTFS-RESULT lines; the host test then checks the
# share from its side (tests/guest/test_smoke.py). On the second boot of a
# reboot run it verifies what the first boot left behind.
# Optional input placed by the host: from-host.txt (its md5 is reported).
# HOSTFS_XATTR=1 (set by the runner when the daemon has --xattr) adds xattr checks.

D=$HOSTFS_MNT/smoke
. /checks.sh

same() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }

report_md5() { echo "HOSTFS-RESULT $1 $(md5sum < "$2" | cut -d' ' -f1)"; }

if [ "$HOSTFS_BOOT" -gt 1 ]; then
    check survives-reboot same "$(cat "$D/renamed.txt")" "hello virtio-fs, again"
    check readdir-after-reboot same "$(ls "$D" | tr '\n' ' ')" \
        "dir hard.txt link.txt random.bin renamed.txt sparse.bin "
    check write-after-reboot sh -c "echo 'boot $HOSTFS_BOOT' > '$D/after-reboot.txt'"
    exit $failures
fi

[ -f "$HOSTFS_MNT/from-host.txt" ] && report_md5 from-host "$HOSTFS_MNT/from-host.txt"
check statfs sh -c "stat -f '$HOSTFS_MNT' | grep -q 'Blocks'"

check mkdir mkdir -p "$D/dir/nested"
check rmdir rmdir "$D/dir/nested"
check create sh -c "echo 'hello virtio-fs' > '$D/hello.txt'"
check read same "$(cat "$D/hello.txt")" "hello virtio-fs"
check append sh -c "echo again >> '$D/hello.txt'"
check read-appended same "$(tr '\n' ' ' < "$D/hello.txt")" "hello virtio-fs again "
check overwrite sh -c "echo 'hello virtio-fs, again' > '$D/hello.txt'"

check write-1mib dd if=/dev/urandom of="$D/random.bin" bs=64k count=16
report_md5 random "$D/random.bin"
check size-1mib same "$(stat -c %s "$D/random.bin")" 1048576
check sparse dd if=/dev/zero of="$D/sparse.bin" bs=4k count=1 seek=255
check size-sparse same "$(stat -c %s "$D/sparse.bin")" 1048576
check truncate truncate -s 1000 "$D/sparse.bin"
check size-truncated same "$(stat -c %s "$D/sparse.bin")" 1000

check rename mv "$D/hello.txt" "$D/renamed.txt"
check renamed-gone sh -c "! [ -e '$D/hello.txt' ]"
check hardlink ln "$D/renamed.txt" "$D/hard.txt"
check link-count same "$(stat -c %h "$D/renamed.txt")" 2
check symlink ln -s renamed.txt "$D/link.txt"
check readlink same "$(readlink "$D/link.txt")" renamed.txt
check read-via-symlink same "$(cat "$D/link.txt")" "hello virtio-fs, again"
check chmod chmod 640 "$D/renamed.txt"
check mode same "$(stat -c %a "$D/renamed.txt")" 640
check utimens touch -d "2001-02-03 04:05:06" "$D/random.bin"
check mtime same "$(date -u -r "$D/random.bin" +%Y)" 2001

check unlink-create sh -c "echo bye > '$D/gone.txt' && rm '$D/gone.txt'"
check unlinked-gone sh -c "! [ -e '$D/gone.txt' ]"
check readdir same "$(ls "$D" | tr '\n' ' ')" "dir hard.txt link.txt random.bin renamed.txt sparse.bin "
check readdir-many sh -c "mkdir '$D/many' && cd '$D/many' && for i in \$(seq 300); do : > f\$i; done \
    && [ \$(ls | wc -l) = 300 ] && cd / && rm -r '$D/many'"

if [ "$HOSTFS_XATTR" != 1 ]; then
    echo "HOSTFS-RESULT xattr skipped: the daemon runs without --xattr"
elif command -v setfattr >/dev/null; then
    check setxattr setfattr -n user.hostfs -v smoke "$D/renamed.txt"
    check getxattr same "$(getfattr --absolute-names --only-values -n user.hostfs "$D/renamed.txt")" smoke
else
    echo "HOSTFS-RESULT xattr skipped: no setfattr in the image"
fi

check fsync sync
exit $failures
