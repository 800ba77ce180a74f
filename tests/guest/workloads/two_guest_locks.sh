# One of two guests on one share, each with its own hostfs (tests/guest/test_two_guest_locks.py),
# once with flock(2) locks (util-linux flock) and once with POSIX record locks (posixlock,
# fcntl F_SETLK/F_SETLKW). HOSTFS_LOCK_ROLE=holder takes an exclusive lock on guest-KIND.lock
# and keeps it until the contender waits for it and the host has probed it; contender checks
# it is refused the lock, then waits for it and checks the holder had let go first. The host
# holds host-KIND.lock for the whole run. Markers between the three are files.

M=$HOSTFS_MNT
. /checks.sh

# lock_run KIND FILE CMD...: CMD while holding an exclusive KIND lock on FILE (waiting for it).
lock_run() {
    kind=$1
    shift
    if [ "$kind" = flock ]; then flock -x "$@"; else posixlock -x "$@"; fi
}

# refused KIND FILE: the exclusive lock is held elsewhere (both tools exit 75 for that).
refused() {
    if [ "$1" = flock ]; then flock -n -E 75 -x "$2" true; else posixlock -n -x "$2" true; fi
    status=$?
    [ $status -eq 75 ] || { echo "$1 -n exited $status, not 75 (refused)"; return 1; }
}

check has-flock flock --version
check has-posixlock sh -c "posixlock 2>&1 | grep -q usage"
for kind in flock posix; do
    case "$HOSTFS_LOCK_ROLE" in
    holder)
        check $kind-host-refuses-guest refused $kind "$M/host-$kind.lock"
        check $kind-holder-holds lock_run $kind "$M/guest-$kind.lock" sh -c "
            touch '$M/$kind-held'
            n=0
            until [ -e '$M/$kind-contending' ] && [ -e '$M/$kind-host-probed' ]; do
                n=\$((n + 1)); [ \$n -gt 600 ] && exit 1; sleep 1
            done
            sleep 2  # the contender is blocked by now; its order check proves the rest
            echo released > '$M/$kind-released'"
        ;;
    contender)
        check $kind-sees-holder wait_for "$M/$kind-held"
        check $kind-holder-refuses-contender refused $kind "$M/guest-$kind.lock"
        touch "$M/$kind-contending"
        check $kind-waits-for-release lock_run $kind "$M/guest-$kind.lock" \
            sh -c "[ -e '$M/$kind-released' ]"
        ;;
    *)
        echo "HOSTFS-CHECK role FAIL unknown HOSTFS_LOCK_ROLE '$HOSTFS_LOCK_ROLE'"
        failures=1
        ;;
    esac
done
exit $failures
