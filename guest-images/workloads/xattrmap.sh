# --xattrmap seen from the guest (tests/guest/test_policies.py serves the share with
# virtiofsd's "prefix everything" rules, ':prefix:all::user.virtiofs.::bad:all:::'):
# the guest's root sets user., trusted. and security. names and reads them back;
# listxattr shows guest names only. The host placed xm/file.txt with user.hostonly
# (hidden from the guest) and user.virtiofs.user.fromhost (the guest's user.fromhost),
# and checks the names stored on its side afterwards.

F=$HOSTFS_MNT/xm/file.txt
. /checks.sh

same() { [ "$1" = "$2" ] || { echo "expected '$2', got '$1'"; return 1; }; }
fails() { if "$@"; then echo "succeeded: $*"; return 1; fi; }
value() { getfattr --absolute-names --only-values -n "$1" "$F"; }
names() { getfattr --absolute-names -m - -d "$F" | grep = | cut -d= -f1 | sort | tr '\n' ' '; }

check set-user setfattr -n user.x -v u "$F"
check set-trusted setfattr -n trusted.x -v t "$F"
check set-security setfattr -n security.x -v s "$F"
check get-user same "$(value user.x)" u
check get-trusted same "$(value trusted.x)" t
check get-security same "$(value security.x)" s
check get-from-host same "$(value user.fromhost)" f
check host-only-hidden fails value user.hostonly
check set-remove setfattr -n user.gone -v g "$F"
check remove setfattr -x user.gone "$F"
check removed fails value user.gone
check list same "$(names)" "security.x trusted.x user.fromhost user.x "
exit $failures
