#!/bin/sh
# Early boot, shared by the role initramfs (/init) and disk images
# (inittab sysinit).  Must never stop the boot: every step is best effort
# and says on the console what failed.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
umask 022

# busybox has no mountpoint(1): read /proc/mounts.
mounted() { grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null; }
[ -e /proc/self ] || mount -t proc -o nosuid,nodev,noexec proc /proc
mounted /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mounted /dev || mount -t devtmpfs -o mode=0755,nosuid devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts /dev/shm
mounted /dev/pts || mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mounted /dev/shm || mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mounted /run || mount -t tmpfs -o mode=0755,nosuid,nodev run /run
mounted /tmp || mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
mkdir -p /run/cyrange /run/lock /var/log/cyrange /var/mail /var/lib/misc

# Identity from the kernel command line (cyrange.host= names the host).
host=""
# shellcheck disable=SC2013 # the command line is one line of words
for arg in $(cat /proc/cmdline); do
    case $arg in
    cyrange.host=*) host=${arg#cyrange.host=} ;;
    esac
done
if [ -n "$host" ]; then
    hostname "$host"
    echo "$host" >/etc/hostname
elif [ -s /etc/hostname ]; then
    hostname "$(cat /etc/hostname)"
fi

# Modules: the virtio chain (network, agent channel, disks) in dependency
# order.  The kernel loads the netfilter modules on demand through
# /sbin/modprobe (busybox, with the image's modules.dep).
kver=$(uname -r)
load_modules() {
    while read -r m; do
        [ -n "$m" ] || continue
        grep -q "^$m " /proc/modules && continue
        f=$(grep -E "(^|/)$m\.ko:" "/lib/modules/$kver/modules.dep" | cut -d: -f1)
        if [ -n "$f" ]; then
            insmod "/lib/modules/$kver/$f" || echo "cyrange: insmod $m failed"
        else
            echo "cyrange: module $m not in /lib/modules/$kver"
        fi
    done <"$1"
}
[ -r /etc/cyrange/modules.boot ] && load_modules /etc/cyrange/modules.boot

/usr/bin/ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

# The agent channel: udev would make /dev/virtio-ports/NAME; do it here.
i=0
while [ ! -d /sys/class/virtio-ports ] || [ -z "$(ls /sys/class/virtio-ports 2>/dev/null)" ]; do
    i=$((i + 1))
    [ "$i" -gt 20 ] && break
    sleep 0.1
done
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] || continue
    name=$(cat "$p/name")
    [ -n "$name" ] && ln -sf "../${p##*/}" "/dev/virtio-ports/$name"
done

# Logs: everything from syslog(3) and the kernel into /var/log/messages.
syslogd -O /var/log/messages
klogd -c 1

# cron: busybox crond runs the jobs in /var/spool/cron/crontabs/USER
# (crontab -e, or an attacker's persistence) and logs every run to syslog
# ("crond: USER root pid N cmd …").  A daemon, not respawned: a team that
# stops it stops it.
if [ ! -d /var/spool/cron/crontabs ]; then
    mkdir -p /var/spool/cron/crontabs
    chmod 700 /var/spool/cron/crontabs
fi
crond -c /var/spool/cron/crontabs || echo "cyrange: crond failed to start"

echo "cyrange: boot setup done at $(cut -d' ' -f1 /proc/uptime) s"
exit 0
