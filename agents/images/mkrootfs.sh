#!/bin/sh
# mkrootfs.sh ROLE WORK AGENT TOOLS [CPIO]: assemble the root file system of
# a role image in WORK/rootfs/ROLE from Debian packages installed on this
# machine (busybox-static as the base; real tcpdump, iptables, ip, dropbear
# and the role's daemons copied with the libraries ldd lists), the kernel
# modules unpacked by mkkernel.sh in WORK/kernel, the static agent AGENT,
# the image's own static tools in TOOLS, and the overlays rootfs/common and
# rootfs/ROLE; then, when CPIO is given, pack it as a gzip'd newc cpio.
#
# ROLE is router, server, workstation, attacker, or disk (the base of the
# test disk image: the common tools, no role services).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

role=${1:?usage: mkrootfs.sh ROLE WORK AGENT TOOLS [CPIO]}
work=${2:?usage: mkrootfs.sh ROLE WORK AGENT TOOLS [CPIO]}
agent=${3:?usage: mkrootfs.sh ROLE WORK AGENT TOOLS [CPIO]}
tools=${4:?usage: mkrootfs.sh ROLE WORK AGENT TOOLS [CPIO]}
cpio_out=${5:-}

case $role in
router | server | workstation | attacker | disk) ;;
*) die "unknown role '$role'" ;;
esac
[ -r "$work/kernel.env" ] || die "$work/kernel.env missing: run mkkernel.sh first"
# shellcheck disable=SC1091
. "$work/kernel.env"
[ -x "$agent" ] || die "agent binary $agent missing (make $agent)"

# What every image needs from the build machine, by Debian package.
need_pkg busybox-static /bin/busybox
need_pkg iproute2 /usr/bin/ip
need_pkg tcpdump /usr/bin/tcpdump
need_pkg iptables /usr/sbin/xtables-legacy-multi /usr/lib/x86_64-linux-gnu/xtables
need_pkg dropbear-bin /usr/sbin/dropbear /usr/bin/dropbearkey /usr/bin/dbclient
need_cmd cpio cpio
need_cmd gzip gzip
need_cmd libc-bin ldd
if ldd /bin/busybox >/dev/null 2>&1; then
    die "/bin/busybox is dynamically linked: install the Debian package 'busybox-static' (it replaces 'busybox')"
fi

root=$work/rootfs/$role
rm -rf "$root"
mkdir -p "$root"

# Layout: usr-merged like Debian 12, so the paths ldd prints are valid.
for d in usr/bin usr/sbin usr/lib usr/lib64 usr/local/bin usr/local/sbin \
    etc/cyrange root home srv mnt opt proc sys dev run tmp \
    var/log var/mail var/spool/cron/crontabs var/lib/misc var/tmp; do
    mkdir -p "$root/$d"
done
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
ln -s ../run "$root/var/run"
ln -s ../run/lock "$root/var/lock"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"

# busybox: one static binary, every applet a symlink to it.
copy_file /bin/busybox "$root" /usr/bin/busybox
busybox --list-full | while read -r app; do
    case $app in
    bin/busybox | */linuxrc) continue ;;
    esac
    dest=$root/usr/${app#usr/}
    [ -e "$dest" ] || [ -L "$dest" ] || ln -s /usr/bin/busybox "$dest"
done

# replace NAME...: drop the busybox applets of that name (a real tool of
# the same name follows).
replace() {
    for _n in "$@"; do
        rm -f "$root/usr/bin/$_n" "$root/usr/sbin/$_n"
    done
}

# Real networking tools, with their libraries.
replace ip
copy_elf /usr/bin/ip "$root"
copy_elf /usr/bin/tcpdump "$root"
copy_elf /usr/sbin/xtables-legacy-multi "$root"
for t in iptables iptables-save iptables-restore iptables-legacy iptables-legacy-save \
    iptables-legacy-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf xtables-legacy-multi "$root/usr/sbin/$t"
done
for so in /usr/lib/x86_64-linux-gnu/xtables/*.so; do
    copy_elf "$so" "$root"
done
copy_elf /usr/sbin/dropbear "$root"
copy_elf /usr/bin/dropbearkey "$root"
copy_elf /usr/bin/dbclient "$root"
ln -sf dbclient "$root/usr/bin/ssh"

case $role in
router)
    need_pkg dnsmasq-base /usr/sbin/dnsmasq
    need_pkg tinyproxy-bin /usr/bin/tinyproxy
    copy_elf /usr/sbin/dnsmasq "$root"
    copy_elf /usr/bin/tinyproxy "$root"
    mkdir -p "$root/usr/share/tinyproxy"
    cp /usr/share/tinyproxy/*.html "$root/usr/share/tinyproxy/"
    ;;
server)
    need_pkg dnsmasq-base /usr/sbin/dnsmasq
    need_pkg sqlite3 /usr/bin/sqlite3
    copy_elf /usr/sbin/dnsmasq "$root"
    copy_elf /usr/bin/sqlite3 "$root"
    for t in mini-smtpd mini-ftpd; do
        [ -x "$tools/$t" ] || die "$tools/$t missing (built by images.mk)"
        copy_file "$tools/$t" "$root" "/usr/sbin/$t"
    done
    ;;
attacker)
    # The C2: mini-c2d for HTTP beacons and uploads, dnsmasq for DNS ones.
    need_pkg dnsmasq-base /usr/sbin/dnsmasq
    copy_elf /usr/sbin/dnsmasq "$root"
    [ -x "$tools/mini-c2d" ] || die "$tools/mini-c2d missing (built by images.mk)"
    copy_file "$tools/mini-c2d" "$root" /usr/sbin/mini-c2d
    ;;
esac

# The agent.
copy_file "$agent" "$root" /sbin/cyrange-agent
chmod 755 "$root/usr/sbin/cyrange-agent"

# Strip what is not stripped yet (the agent and the image's own tools are
# built with -g); optional: binutils may be missing.
if command -v strip >/dev/null 2>&1; then
    for f in "$root/usr/sbin/cyrange-agent" "$root/usr/sbin/mini-smtpd" "$root/usr/sbin/mini-ftpd" \
        "$root/usr/sbin/mini-c2d"; do
        if [ -f "$f" ]; then strip --strip-unneeded "$f" 2>/dev/null || true; fi
    done
fi

# Kernel modules: the virtio chain (DESIGN.md order) plus virtio_console are
# loaded at boot; netfilter modules are in the image and loaded on demand by
# the kernel through busybox modprobe.  disk adds virtio_blk.
boot_mods="virtio_ring virtio failover net_failover virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net virtio_console"
[ "$role" = disk ] && boot_mods="$boot_mods virtio_blk"
nf_mods="x_tables ip_tables iptable_filter iptable_nat iptable_mangle iptable_raw
nf_conntrack nf_nat nf_defrag_ipv4 nf_defrag_ipv6 libcrc32c nf_reject_ipv4 ipt_REJECT
xt_conntrack xt_state xt_tcpudp xt_multiport xt_comment xt_LOG nf_log_syslog xt_limit
xt_MASQUERADE xt_REDIRECT xt_nat xt_mark xt_iprange xt_addrtype xt_NFLOG nfnetlink_log
xt_recent xt_mac xt_owner xt_pkttype xt_length xt_hashlimit nf_conntrack_ftp nf_nat_ftp
af_packet"
kmods=$work/kernel/lib/modules/$KVER
imods=$root/lib/modules/$KVER
mkdir -p "$imods"
# shellcheck disable=SC2086 # lists of module names
for p in $(mod_closure "$kmods" $boot_mods $nf_mods); do
    mkdir -p "$imods/$(dirname "$p")"
    cp "$kmods/$p" "$imods/$p"
done
cp "$kmods/modules.builtin" "$kmods/modules.order" "$imods/"
busybox depmod -b "$root" "$KVER"
# The boot list keeps the proven DESIGN.md order (dependencies first).
# shellcheck disable=SC2086
printf '%s\n' $boot_mods >"$root/etc/cyrange/modules.boot"

# Overlays: the common files, then the role's.
# --remove-destination: never write through a busybox applet link.
cp -a --remove-destination "$here/rootfs/common/." "$root/"
[ "$role" = disk ] || cp -a --remove-destination "$here/rootfs/$role/." "$root/"
echo "$role" >"$root/etc/cyrange/role"
chmod 640 "$root/etc/shadow"
# crond reads root's jobs from here (crontab -e writes them).
chmod 700 "$root/var/spool/cron/crontabs"
# udhcpc's usual default script path, for people typing udhcpc by hand.
mkdir -p "$root/usr/share/udhcpc"
ln -sf /etc/cyrange/udhcpc.script "$root/usr/share/udhcpc/default.script"

# What is in the image, for images.json and for people on the console.
{
    echo "CYR_IMAGE_ROLE='$role'"
    echo "CYR_IMAGE_KERNEL='$KVER'"
    for p in busybox-static iproute2 tcpdump iptables dropbear-bin dnsmasq-base tinyproxy-bin sqlite3 libc6; do
        v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
        echo "CYR_IMAGE_PKG_$(echo "$p" | tr -c 'A-Za-z0-9\n' '_')='$v'"
    done
} >"$root/etc/cyrange/image.env"

if [ -n "$cpio_out" ]; then
    mkdir -p "$(dirname "$cpio_out")"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
        gzip -9 -n >"$cpio_out.tmp"
    mv "$cpio_out.tmp" "$cpio_out"
    echo "images: $role -> $cpio_out ($(fsize "$cpio_out") bytes)"
fi
