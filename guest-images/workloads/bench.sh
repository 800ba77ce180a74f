# Throughput and metadata-rate benchmark, identical in the guest and on the host
# (scripts/bench-guest runs it with busybox sh on the host as the native
# reference). Emits HOSTFS-MEASURE lines; the host computes the rates.
# Under TCG every process start costs tens of ms, so the loops use only shell
# built-ins (": >" creates, "[ -e ]" stats, globbing reads the directory) and
# each phase is one long-running process at most.
# Knobs: HOSTFS_BENCH_MIB (sequential file size), HOSTFS_BENCH_FILES.

D=$HOSTFS_MNT/bench
MIB=${HOSTFS_BENCH_MIB:-128}
FILES=${HOSTFS_BENCH_FILES:-1000}
LISTINGS=20

# Monotonic nanoseconds from the third line of /proc/timer_list, read by the
# shell itself (/proc/uptime has only 10 ms resolution, date(1) is a process).
now() { { read -r _; read -r _; read -r _ _ ns _; } < /proc/timer_list; }
measure() { echo "HOSTFS-MEASURE $1 $2 $3 $start $ns"; }

rm -rf "$D" && mkdir -p "$D/meta" || exit 1

now; start=$ns
dd if=/dev/zero of="$D/seq" bs=1M count="$MIB" conv=fsync 2>/dev/null || exit 1
now; measure seq-write "$MIB" MiB

# The guest's page cache would answer the read; the host's may (as for any peer).
[ -w /proc/sys/vm/drop_caches ] && [ "$HOSTFS_BENCH_DROP_CACHES" = 1 ] \
    && echo 3 > /proc/sys/vm/drop_caches
now; start=$ns
dd if="$D/seq" of=/dev/null bs=1M 2>/dev/null || exit 1
now; measure seq-read "$MIB" MiB

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
rm -r "$D/meta" || exit 1
now; measure unlink "$FILES" files

rm -rf "$D"
