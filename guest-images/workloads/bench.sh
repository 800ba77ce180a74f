# Throughput and metadata-rate benchmark, identical in the guest and on the host
# (scripts/bench-guest runs it with busybox sh on the host as the native
# reference). Emits HOSTFS-MEASURE lines; the host computes the rates.
# Under TCG every process start costs tens of ms, so the loops use only shell
# built-ins (": >" creates, "[ -e ]" stats, globbing reads the directory) and
# each phase is one long-running process at most. Random 4 KiB I/O needs a
# seek, which no busybox applet does in a loop: it is one perl process
# (perl-base, copied into the guest by hostfs.guest.initramfs), left out
# without perl.
# Knobs: HOSTFS_BENCH_MIB (sequential file size), HOSTFS_BENCH_FILES,
# HOSTFS_BENCH_OPS (random 4 KiB reads and writes).

D=$HOSTFS_MNT/bench
MIB=${HOSTFS_BENCH_MIB:-128}
FILES=${HOSTFS_BENCH_FILES:-1000}
OPS=${HOSTFS_BENCH_OPS:-1000}
LISTINGS=20

# Two workers at once, one per CPU (a Linux >= 6.11 guest sends each on its CPU's
# request queue): each creates FILES files in a directory of its own.
if [ "$1" = worker ]; then
    i=0
    while [ $i -lt "$FILES" ]; do : > "$2/f$i"; i=$((i + 1)); done
    exit 0
fi

# Monotonic nanoseconds from the third line of /proc/timer_list, read by the
# shell itself (/proc/uptime has only 10 ms resolution, date(1) is a process).
now() { { read -r _; read -r _; read -r _ _ ns _; } < /proc/timer_list; }
measure() { echo "HOSTFS-MEASURE $1 $2 $3 $start $ns"; }

# OPS reads (r) or writes (w) of 4 KiB at random 4 KiB-aligned offsets of FILE.
random_io() {
    perl -e '
        my ($mode, $file, $ops, $blocks) = @ARGV;
        sysopen(F, $file, $mode eq "w" ? 2 : 0) or die "open $file: $!";
        srand(1);
        my $buf = "r" x 4096;
        for (1 .. $ops) {
            sysseek(F, int(rand($blocks)) * 4096, 0) or die "seek: $!";
            my $done = $mode eq "w" ? syswrite(F, $buf, 4096) : sysread(F, $buf, 4096);
            $done == 4096 or die "$mode: $!";
        }' "$1" "$2" "$OPS" $((MIB * 256))
}

drop_caches() {
    [ -w /proc/sys/vm/drop_caches ] && [ "$HOSTFS_BENCH_DROP_CACHES" = 1 ] \
        && echo 3 > /proc/sys/vm/drop_caches
}

rm -rf "$D" && mkdir -p "$D/meta" || exit 1

now; start=$ns
dd if=/dev/zero of="$D/seq" bs=1M count="$MIB" conv=fsync 2>/dev/null || exit 1
now; measure seq-write "$MIB" MiB

# The guest's page cache would answer the read; the host's may (as for any peer).
drop_caches
now; start=$ns
dd if="$D/seq" of=/dev/null bs=1M 2>/dev/null || exit 1
now; measure seq-read "$MIB" MiB

if command -v perl > /dev/null; then
    drop_caches
    now; start=$ns
    random_io r "$D/seq" || exit 1
    now; measure rand-read-4k "$OPS" ops
    now; start=$ns
    random_io w "$D/seq" || exit 1
    now; measure rand-write-4k "$OPS" ops
fi
rm "$D/seq" || exit 1

now; start=$ns
i=0
while [ $i -lt "$FILES" ]; do : > "$D/meta/f$i"; i=$((i + 1)); done
now; measure create "$FILES" files

now; start=$ns
i=0
while [ $i -lt "$FILES" ]; do [ -e "$D/meta/f$i" ] || exit 1; i=$((i + 1)); done
now; measure stat "$FILES" files

now; start=$ns
i=0
while [ $i -lt $LISTINGS ]; do set -- "$D"/meta/*; i=$((i + 1)); done
[ $# -eq "$FILES" ] || exit 1
now; measure readdir $((LISTINGS * FILES)) entries

now; start=$ns
i=0
while [ $i -lt $LISTINGS ]; do ls -l "$D/meta" > /dev/null || exit 1; i=$((i + 1)); done
now; measure ls-l $((LISTINGS * FILES)) entries

now; start=$ns
rm -r "$D/meta" || exit 1
now; measure unlink "$FILES" files

mkdir "$D/cpu0" "$D/cpu1" || exit 1
last=$(($(nproc) - 1))
now; start=$ns
taskset -c 0 sh "$0" worker "$D/cpu0" &
first=$!
taskset -c $((1 < last ? 1 : last)) sh "$0" worker "$D/cpu1" &
second=$!
wait $first || exit 1
wait $second || exit 1
now; measure create-2cpu $((2 * FILES)) files

rm -rf "$D"
