# --translate-uid/--translate-gid map:0:100000:65536 seen from the guest, the shift a
# user namespace would make (tests/guest/test_policies.py): the guest's root acts as
# host uid 100000, with that uid's rights and no more. The host placed shifted/ (owned
# by 100000:100000), host-shifted.txt (100042:100043) and host-root.txt (0:0, mode
# 0644), and checks the owners stored on its side afterwards.

M=$HOSTFS_MNT
D=$M/shifted
. /checks.sh

same() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }
owner() { stat -c %u:%g "$1"; }

# The operation must fail with the given error text.
refused() {
    text=$1
    shift
    if out=$("$@" 2>&1 < /dev/null); then echo "succeeded: $*"; return 1; fi
    echo "$out" | grep -q "$text" || { echo "not '$text': $out"; return 1; }
}

check share-owner-shown same "$(owner "$D")" 0:0
check host-shifted-shown same "$(owner "$M/host-shifted.txt")" 42:43
check host-root-shown same "$(owner "$M/host-root.txt")" 0:0

check root-mkdir mkdir "$D/dir"
check root-create sh -c "echo root > '$D/dir/file.txt'"
check root-symlink ln -s file.txt "$D/dir/link"
check root-owner same "$(owner "$D/dir/file.txt")" 0:0
check root-chmod chmod 600 "$D/dir/file.txt"
# Host uid 100000 owns the file but holds no CAP_CHOWN there: a chown to other ids is
# refused by the host kernel (the caller's credentials), one to its own ids is not.
check root-chown-own chown 0:0 "$D/dir/file.txt"
check root-chown-other-refused refused "Operation not permitted" chown 1000:1000 "$D/dir/file.txt"
# Reported, not judged here: OPEN of an existing file runs with the daemon's own
# credentials (as in virtiofsd), after the guest kernel's checks, which guest root passes.
if echo guest 2>/dev/null >> "$M/host-root.txt"; then written=yes; else written=no; fi
echo "HOSTFS-RESULT root-wrote-host-root-file $written"
exit $failures
