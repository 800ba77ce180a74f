# The guest's root creates on the share; the host then checks who owns what it made
# (tests/guest/test_unprivileged.py: an ordinary user's daemon with --uid-map=:0:UID:1:).
# Reports the owner the guest sees, and tries to give a file to a uid the map lacks.

D=$HOSTFS_MNT/owned
. /checks.sh

refused() { if "$@" 2>/dev/null; then echo "$* was allowed"; return 1; fi; }

check whoami sh -c '[ "$(id -u)" = 0 ]'
check mkdir mkdir "$D"
check create sh -c "echo 'made by the guest root' > '$D/file'"
check symlink ln -s file "$D/link"
check mkfifo mkfifo "$D/fifo"
echo "HOSTFS-RESULT guest-owner $(stat -c %u:%g "$D/file")"
check chown-unmapped refused chown 1000 "$D/file"
check read sh -c "[ \"\$(cat '$D/file')\" = 'made by the guest root' ]"
exit $failures
