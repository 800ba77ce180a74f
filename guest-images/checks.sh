# What the checking workloads share, sourced as /checks.sh (hostfs/guest/initramfs.py
# puts it beside /workload.sh). `check NAME COMMAND...` runs COMMAND with stdin from
# /dev/null (the workload's stdin is the serial console) and prints
# `HOSTFS-CHECK NAME ok`, or `FAIL` with the start of its output, which the host's
# tests read one check at a time; $failures counts the failed ones (the exit status).

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
