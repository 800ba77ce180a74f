# --readonly seen from the guest (tests/guest/test_policies.py): every change
# fails with EROFS, reads work. The host placed ro/file.txt ("original", xattr
# user.keep=1), ro/dir/ and ro/link -> file.txt, and compares a snapshot of the
# tree before and after. One HOSTFS-CHECK per operation.

D=$HOSTFS_MNT/ro
failures=0

report() {
    if [ "$2" = ok ]; then echo "HOSTFS-CHECK $1 ok"; else
        echo "HOSTFS-CHECK $1 FAIL $(echo "$3" | head -c 160 | tr '\n' ' ')"
        failures=$((failures + 1))
    fi
}

check() {
    name=$1
    shift
    if out=$("$@" 2>&1 < /dev/null); then report "$name" ok; else report "$name" FAIL "$out"; fi
}

# The operation must fail, and say why: EROFS ("Read-only file system").
erofs() {
    name=$1
    shift
    if out=$("$@" 2>&1 < /dev/null); then
        report "$name" FAIL "succeeded: $*"
    elif echo "$out" | grep -q "Read-only file system"; then
        report "$name" ok
    else
        report "$name" FAIL "not EROFS: $out"
    fi
}

same() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }

erofs create touch "$D/new.txt"
erofs create-by-redirect sh -c "echo x > '$D/new2.txt'"
erofs utimens touch "$D/file.txt"
erofs mkdir mkdir "$D/newdir"
erofs unlink rm "$D/file.txt"
erofs rmdir rmdir "$D/dir"
erofs rename mv "$D/file.txt" "$D/moved.txt"
erofs chmod chmod 600 "$D/file.txt"
erofs chown chown 1:1 "$D/file.txt"
erofs append sh -c "echo more >> '$D/file.txt'"
erofs overwrite sh -c "echo new > '$D/file.txt'"
erofs truncate truncate -s 0 "$D/file.txt"
erofs hardlink ln "$D/file.txt" "$D/hard.txt"
erofs symlink ln -s file.txt "$D/sym"
erofs mkfifo mkfifo "$D/fifo"
erofs setxattr setfattr -n user.new -v 1 "$D/file.txt"
erofs removexattr setfattr -x user.keep "$D/file.txt"

check read same "$(cat "$D/file.txt")" original
check readdir same "$(ls "$D" | tr '\n' ' ')" "dir file.txt link "
check readlink same "$(readlink "$D/link")" file.txt
check read-via-symlink same "$(cat "$D/link")" original
check getxattr same "$(getfattr --absolute-names --only-values -n user.keep "$D/file.txt")" 1
check statfs sh -c "stat -f '$HOSTFS_MNT' | grep -q Blocks"

# What the guest can see of read-only-ness: fuse_kstatfs carries no flags, and the
# guest mounted the share read-write, so neither statfs(2) nor /proc/mounts says so.
echo "HOSTFS-RESULT mount-options $(awk '$2 == "/mnt" { print $4 }' /proc/mounts)"
echo "HOSTFS-RESULT statfs-type $(stat -f -c %t "$HOSTFS_MNT")"
exit $failures
