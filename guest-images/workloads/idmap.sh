# --translate-uid/--translate-gid seen from the guest (tests/guest/test_policies.py
# serves the share with map:1000:101000:1000 for uids and gids and forbid-guest:3000:1
# for uids; guest root is outside every range, so it stays root). The host placed
# host-owned.txt (host ids 101042:101043) and host-unmapped.txt (7:8); it checks
# the owners stored on its side afterwards. One HOSTFS-CHECK per property.

M=$HOSTFS_MNT
D=$M/ids
. /checks.sh

same() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }
fails() { if "$@"; then echo "succeeded: $*"; return 1; fi; }
owner() { stat -c %u:%g "$1"; }
as() { user=$1; shift; su -s /bin/sh "$user" -c "$*"; }

# Guest users for su (the initramfs has no /etc/passwd of its own).
echo 'root:x:0:0::/:/bin/sh' > /etc/passwd
echo 'u1005:x:1005:1006::/:/bin/sh' >> /etc/passwd
echo 'u3000:x:3000:3000::/:/bin/sh' >> /etc/passwd
printf 'root:x:0:\ng1006:x:1006:\ng3000:x:3000:\n' > /etc/group

check host-owned-shown same "$(owner "$M/host-owned.txt")" 1042:1043
check host-unmapped-shown same "$(owner "$M/host-unmapped.txt")" 7:8

check root-mkdir mkdir "$D"
check root-chmod chmod 1777 "$D"
check root-create sh -c "echo root > '$D/root.txt'"
check root-owner same "$(owner "$D/root.txt")" 0:0
check root-chown chown 1000:1001 "$D/root.txt"
check chowned-owner same "$(owner "$D/root.txt")" 1000:1001

check user-create as u1005 "echo user > '$D/user.txt'"
check user-owner same "$(owner "$D/user.txt")" 1005:1006
check user-mkdir as u1005 "mkdir '$D/userdir'"
check user-dir-owner same "$(owner "$D/userdir")" 1005:1006
check user-reads-own as u1005 "cat '$D/user.txt'"
check user-chmod-own as u1005 "chmod 600 '$D/user.txt'"
check user-cannot-chown fails as u1005 "chown 1000 '$D/user.txt'"

check forbidden-create fails as u3000 "echo no > '$D/forbidden.txt'"
check forbidden-absent fails [ -e "$D/forbidden.txt" ]
exit $failures
