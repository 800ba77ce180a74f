# Two workers pinned to vCPU 0 and vCPU 1 with taskset, at once: Linux >= 6.11
# sends each FUSE request on the request queue of the CPU it runs on, so with
# num-request-queues=2 both queues carry traffic (tests/guest/test_request_queues.py
# checks that from the daemon's log). Each worker creates, writes, reads back,
# verifies and unlinks its own files; a CHECK line per worker.
# Knob: HOSTFS_QUEUES_FILES (files per worker).

D=$HOSTFS_MNT/queues
FILES=${HOSTFS_QUEUES_FILES:-200}

if [ "$1" = worker ]; then
    cpu=$2
    w=$D/cpu$cpu
    mkdir "$w" || exit 1
    i=0
    while [ $i -lt "$FILES" ]; do
        echo "cpu $cpu file $i" > "$w/f$i" || exit 1
        i=$((i + 1))
    done
    head -c 262144 /dev/urandom > "/tmp/blob$cpu" && cp "/tmp/blob$cpu" "$w/blob" || exit 1
    cmp -s "/tmp/blob$cpu" "$w/blob" || { echo "blob differs"; exit 1; }
    i=0
    while [ $i -lt "$FILES" ]; do
        read -r line < "$w/f$i" || exit 1
        [ "$line" = "cpu $cpu file $i" ] || { echo "f$i holds '$line'"; exit 1; }
        i=$((i + 1))
    done
    rm -r "$w" || exit 1
    [ ! -e "$w" ] || exit 1
    exit 0
fi

mkdir -p "$D" || exit 1
echo "HOSTFS-RESULT cpus $(nproc)"
taskset -c 0 sh "$0" worker 0 > /tmp/out0 2>&1 &
first=$!
taskset -c 1 sh "$0" worker 1 > /tmp/out1 2>&1 &
second=$!
failures=0
for cpu in 0 1; do
    if [ $cpu = 0 ]; then wait $first; else wait $second; fi
    status=$?
    if [ $status = 0 ]; then
        echo "HOSTFS-CHECK worker-cpu$cpu ok"
    else
        echo "HOSTFS-CHECK worker-cpu$cpu FAIL status $status $(head -c 160 /tmp/out$cpu | tr '\n' ' ')"
        failures=$((failures + 1))
    fi
done
rmdir "$D" || failures=$((failures + 1))
exit $failures
