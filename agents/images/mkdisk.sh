#!/bin/sh
# mkdisk.sh boot WORK OUT.cpio.gz
#     the generic disk-boot initramfs (busybox, virtio_blk chain, disk/init)
# mkdisk.sh base WORK OUT.qcow2 AGENT
#     the example user base disk: an ext4 root file system (the common image
#     tools, the agent installed as README.md describes, busybox init) made
#     with mkfs.ext4 -d, converted to qcow2
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

what=${1:?usage: mkdisk.sh boot|base WORK OUT [AGENT]}
work=${2:?usage: mkdisk.sh boot|base WORK OUT [AGENT]}
out=${3:?usage: mkdisk.sh boot|base WORK OUT [AGENT]}
[ -r "$work/kernel.env" ] || die "$work/kernel.env missing: run mkkernel.sh first"
# shellcheck disable=SC1091
. "$work/kernel.env"
mkdir -p "$(dirname "$out")"

case $what in
boot)
    need_pkg busybox-static /bin/busybox
    need_cmd cpio cpio
    root=$work/disk-boot
    rm -rf "$root"
    mkdir -p "$root/usr/bin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/newroot"
    ln -s usr/bin "$root/bin"
    ln -s usr/bin "$root/sbin"
    cp /bin/busybox "$root/usr/bin/busybox"
    for a in sh mount umount insmod grep cut sleep cat mkdir findfs switch_root setsid cttyhack ls; do
        ln -s busybox "$root/usr/bin/$a"
    done
    # ext4, jbd2, mbcache, crc16 and crc32c are built in (modules.builtin);
    # mod_closure skips them and would stop on a missing one.
    mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"
    kmods=$work/kernel/lib/modules/$KVER
    # shellcheck disable=SC2086
    for p in $(mod_closure "$kmods" $mods ext4 jbd2 mbcache crc16 crc32c_generic); do
        mkdir -p "$root/lib/modules/$KVER/$(dirname "$p")"
        cp "$kmods/$p" "$root/lib/modules/$KVER/$p"
    done
    busybox depmod -b "$root" "$KVER"
    # shellcheck disable=SC2086
    printf '%s\n' $mods >"$root/etc/modules.boot"
    cp "$here/disk/init" "$root/init"
    chmod 755 "$root/init"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
        gzip -9 -n >"$out.tmp"
    mv "$out.tmp" "$out"
    echo "images: disk-boot -> $out ($(fsize "$out") bytes)"
    ;;
base)
    agent=${4:?usage: mkdisk.sh base WORK OUT.qcow2 AGENT}
    need_pkg e2fsprogs /sbin/mkfs.ext4
    need_pkg qemu-utils /usr/bin/qemu-img
    sh "$here/mkrootfs.sh" disk "$work" "$agent" "$work/tools"
    root=$work/rootfs/disk
    # A disk boots /sbin/init itself: the boot set-up runs as sysinit.
    rm -f "$root/init"
    cp "$here/disk/inittab" "$root/etc/inittab"
    cp "$here/disk/fstab" "$root/etc/fstab"
    echo "base-test" >"$root/etc/hostname"
    kb=$(du -sk "$root" | cut -f1)
    # Room for logs, mail and the trainees' work: twice the tree, 64 MiB
    # at least (qcow2 stores only what is used).
    mb=$((kb * 2 / 1024 + 32))
    [ "$mb" -ge 64 ] || mb=64
    raw=$work/base-test.raw
    rm -f "$raw"
    truncate -s "${mb}M" "$raw"
    mkfs.ext4 -q -F -L cyrange-root -E root_owner=0:0 -d "$root" "$raw"
    qemu-img convert -f raw -O qcow2 "$raw" "$out.tmp"
    rm -f "$raw"
    mv "$out.tmp" "$out"
    echo "images: base-test -> $out ($(fsize "$out") bytes, ${mb} MiB ext4)"
    ;;
*)
    die "usage: mkdisk.sh boot|base WORK OUT [AGENT]"
    ;;
esac
