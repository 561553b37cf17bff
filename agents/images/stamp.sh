#!/bin/sh
# stamp.sh kernel|tools FILE: write FILE with the versions of the build's
# Debian inputs, but only when they changed, so make rebuilds the images
# exactly when a package they copy from is upgraded (or the cloud kernel
# that linux-image-cloud-amd64 names changes).
set -eu
here=$(dirname "$0")
what=${1:?usage: stamp.sh kernel|tools FILE}
file=${2:?usage: stamp.sh kernel|tools FILE}
mkdir -p "$(dirname "$file")"
case $what in
kernel)
    name=$("$here/kernel-pkg.sh" name)
    ver=""
    [ -z "$name" ] || ver=$("$here/kernel-pkg.sh" version)
    if [ -z "$name" ] || [ -z "$ver" ]; then
        # apt does not know the package (offline, no lists, or apt busy):
        # keep what we have; mkkernel.sh then uses the cached package.
        [ -f "$file" ] && exit 0
        new="unknown"
    else
        new="$name $ver"
    fi
    ;;
tools)
    new=$(for p in busybox-static iproute2 tcpdump iptables dropbear-bin dnsmasq-base \
        tinyproxy-bin sqlite3 libc6 libcrypt-dev e2fsprogs qemu-utils; do
        v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
        echo "$p ${v:-missing}"
    done)
    ;;
*)
    echo "usage: stamp.sh kernel|tools FILE" >&2
    exit 2
    ;;
esac
if [ ! -f "$file" ] || [ "$(cat "$file")" != "$new" ]; then
    printf '%s\n' "$new" >"$file"
fi
