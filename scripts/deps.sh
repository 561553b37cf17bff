#!/bin/sh
# Install, idempotently, every Debian package cyrange needs, then make sure
# libvirtd is running.  Safe to run again and again; does nothing that is
# already done.  Needs root (or sudo) on Debian 12.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev valgrind
libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base
iptables busybox-static cpio gzip
libvirt-dev libjansson-dev libuv1-dev libpcap-dev libcmocka-dev libsqlite3-dev
tcpdump tshark dropbear-bin tinyproxy-bin iproute2 procps sqlite3
python3 python3-jsonschema cppcheck e2fsprogs nettle-dev libsodium-dev
libhttp-parser-dev wrk nginx-light chromium nodejs"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

# npm (web UI packages, browser tests): Debian's npm package, unless a node
# installation that brings its own npm (e.g. NodeSource's nodejs, which
# conflicts with Debian's npm) is already there.
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi

if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer for it.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
else
    echo "deps: all packages present"
fi

exec "$(dirname "$0")/libvirtd-start.sh"
