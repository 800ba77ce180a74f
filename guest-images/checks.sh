# What the checking workloads share, sourced as /checks.sh (hostfs/guest/initramfs.py
# puts it beside /workload.sh). `check NAME COMMAND...` runs COMMAND with stdin from
# /dev/null (the workload's stdin is the serial console) and prints
# `HOSTFS-CHECK NAME ok`, or `FAIL` with the start of its output, which the host's
# tests read one check at a time; $failures counts the failed ones (the exit status).
# `wait_for PATH` waits up to 600 s for PATH, a marker file another side creates.

failures=0

check() {
    name=$1
    shift
    if out=$("$@" 2>&1 < /dev/null); then
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
