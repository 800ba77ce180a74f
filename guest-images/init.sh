#!/bin/sh
# /init of the hostfs test guest: load virtio-fs, mount the share, run the
# workload, report on the serial console, power off (or reboot, to test the
# device-reset path). Every line the host parses starts with "HOSTFS-".
# /etc/hostfs-guest.env (written by hostfs.guest.initramfs) sets MODULES, TAG,
# BOOTS and the workload's own variables.

export PATH=/bin:/usr/bin

fail() {
    echo "HOSTFS-GUEST-FAIL $*"
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
. /etc/hostfs-guest.env

for module in $MODULES; do
    insmod "/lib/modules/$module.ko" || fail "insmod $module"
done
mount -t virtiofs "$TAG" /mnt || fail "mount -t virtiofs $TAG"

# The share remembers which boot this is: the marker is written before a
# reboot and removed on the last boot (the host removes stale ones).
boot=1
[ -f /mnt/.hostfs-guest-boot ] && read boot < /mnt/.hostfs-guest-boot
echo "HOSTFS-GUEST-BOOT $boot $BOOTS"

HOSTFS_BOOT=$boot HOSTFS_MNT=/mnt sh /workload.sh
echo "HOSTFS-WORKLOAD-EXIT $?"

# HOSTFS_POWER_BUTTON=1: after each boot's workload, wait for the ACPI power button
# (`virsh reboot` and `virsh shutdown` press it) and power off; libvirt turns the
# power-off into a reset when it was asked to reboot.
wait_for_the_button() {
    [ "$HOSTFS_POWER_BUTTON" = 1 ] || return 1
    echo "HOSTFS-GUEST-WAITING"
    hostfs-io wait-power-button >/dev/null || fail "hostfs-io wait-power-button"
}

if [ "$boot" -lt "$BOOTS" ]; then
    echo $((boot + 1)) > /mnt/.hostfs-guest-boot
    umount /mnt || fail "umount before reboot"
    if wait_for_the_button; then
        echo "HOSTFS-GUEST-REBOOT"
        poweroff -f
    fi
    echo "HOSTFS-GUEST-REBOOT"
    reboot -f
fi
rm -f /mnt/.hostfs-guest-boot
umount /mnt || fail "umount"
wait_for_the_button
echo "HOSTFS-GUEST-END"
poweroff -f
