#!/bin/sh
# Start virtlogd and libvirtd when they are not running (there is no service
# manager on the machines cyrange targets; see DESIGN.md section 3), then wait
# until qemu:///system answers.
set -eu
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

$SUDO mkdir -p /var/log/libvirt /run/libvirt /var/lib/cyrange
# libvirt-qemu must be able to reach guest files under the state folder.
$SUDO chmod 755 /var/lib/cyrange

# /dev/kvm as Debian's udev rule leaves it (root:kvm 0660).  Without udev it
# can stay root-only: libvirtd then probes QEMU as root with KVM, finds KVM
# unusable for libvirt-qemu when it checks its cache, and probes QEMU again
# before every guest start (measured: 56 s per guest instead of 0.1 s).
# Guests still run under TCG (DESIGN.md section 3); this only keeps the
# capabilities cache valid.
if [ -c /dev/kvm ] && getent group kvm >/dev/null 2>&1; then
    $SUDO chgrp kvm /dev/kvm
    $SUDO chmod 660 /dev/kvm
fi

if ! pgrep -x virtlogd >/dev/null 2>&1; then
    $SUDO virtlogd -d
fi
if ! pgrep -x libvirtd >/dev/null 2>&1; then
    $SUDO libvirtd -d
fi

i=0
while ! $SUDO virsh -c qemu:///system version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 60 ]; then
        echo "libvirtd-start: libvirtd did not answer on qemu:///system within 30 s" >&2
        exit 1
    fi
    sleep 0.5
done
echo "libvirtd: running ($(virsh -c qemu:///system version 2>/dev/null | sed -n 's/.*Running hypervisor: //p'))"
