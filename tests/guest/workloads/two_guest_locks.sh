# One of two guests on one share, each with its own hostfs (tests/guest/test_two_guest_locks.py).
# HOSTFS_LOCK_ROLE=holder takes an exclusive flock on guest.lock and keeps it until the
# contender waits for it and the host has probed it; contender checks it is refused
# the lock, then waits for it and checks the holder had let go first. The host holds
# a flock on host.lock for the whole run. Markers between the three are files.

M=$HOSTFS_MNT
failures=0

check() {
    name=$1
    shift
    if out=$("$@" 2>&1); then
        echo "HOSTFS-CHECK $name ok"
    else
        echo "HOSTFS-CHECK $name FAIL $(echo "$out" | head -c 160 | tr '\n' ' ')"
        failures=$((failures + 1))
    fi
}

wait_for() {
    n=0
    while [ ! -e "$1" ]; do
        n=$((n + 1))
        [ $n -gt 600 ] && { echo "no $1 after 600 s"; return 1; }
        sleep 1
    done
}

# util-linux flock (Debian's busybox has no flock applet): exit 75 means "refused".
refused() {
    flock -n -E 75 -x "$1" true
    status=$?
    [ $status -eq 75 ] || { echo "flock -n exited $status, not 75 (refused)"; return 1; }
}

check has-flock flock --version
case "$HOSTFS_LOCK_ROLE" in
holder)
    check host-flock-refuses-guest refused "$M/host.lock"
    exec 8<>"$M/guest.lock"
    check holder-locks flock -n -x 8
    touch "$M/held"
    check sees-contender wait_for "$M/contending"
    check sees-host-probe wait_for "$M/host-probed"
    sleep 2  # the contender is blocked in flock -x by now; the order check proves the rest
    echo released > "$M/released"
    check holder-unlocks flock -u 8
    exec 8>&-
    ;;
contender)
    check sees-holder wait_for "$M/held"
    check holder-refuses-contender refused "$M/guest.lock"
    touch "$M/contending"
    check waits-for-release flock -x "$M/guest.lock" sh -c "[ -e '$M/released' ]"
    ;;
*)
    echo "HOSTFS-CHECK role FAIL unknown HOSTFS_LOCK_ROLE '$HOSTFS_LOCK_ROLE'"
    failures=1
    ;;
esac
exit $failures
