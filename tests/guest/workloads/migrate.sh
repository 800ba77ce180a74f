# A guest that lives through a live migration (tests/guest/test_migration.py). Before it:
# this shell opens work/log for writing (fd 3), a posixlock holds a POSIX lock on
# work/lock, and the shell's cwd is work. The host then migrates the VM to a second QEMU
# on a second hostfs (same share) and writes work/migrated. After it: the shell writes
# through the same fd, the lock is released (once the host has probed it), the
# directory it is in is listed. Markers between guest and host are files.

M=$HOSTFS_MNT
. /checks.sh

mkdir -p "$M/work/sub" && echo listed > "$M/work/sub/entry"
cd "$M/work" || exit 1
exec 3>>log
echo before >&3
: > lock
posixlock -x lock sh -c 'touch locked; until [ -e probed ]; do sleep 1; done' &
holder=$!
check lock-taken wait_for locked
touch ready
check migrated wait_for migrated
echo after >&3
check wrote-after [ $? -eq 0 ]
wait $holder
check lock-holder-exited [ $? -eq 0 ]
check lock-released posixlock -n -x lock true
check cwd [ "$(pwd)" = "$M/work" ]
check cwd-lists sh -c 'ls . | grep -qx sub && ls sub | grep -qx entry'
exec 3>&-
check log-contents sh -c '[ "$(cat log)" = "$(printf "before\nafter")" ]'
echo done > finished
exit $failures
