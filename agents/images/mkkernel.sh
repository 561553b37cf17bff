#!/bin/sh
# mkkernel.sh CACHE WORK OUT: fetch Debian's cloud kernel package (the
# linux-image-6.1.0-*-cloud-amd64 that linux-image-cloud-amd64 depends on)
# into CACHE (kept between builds), unpack it into WORK/kernel, put the
# kernel at OUT/vmlinuz and describe it in WORK/kernel.env.  Installing the
# package is not needed (and would drag in initramfs-tools).
set -eu
here=$(dirname "$0")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

cache=${1:?usage: mkkernel.sh CACHE WORK OUT}
work=${2:?usage: mkkernel.sh CACHE WORK OUT}
out=${3:?usage: mkkernel.sh CACHE WORK OUT}
need_cmd apt apt-get
need_cmd dpkg dpkg-deb
need_pkg busybox-static /bin/busybox
mkdir -p "$cache" "$work" "$out"

# last_match PATTERN: the last file (in glob order) matching PATTERN.
last_match() {
    _last=""
    for _f in $1; do
        [ -e "$_f" ] && _last=$_f
    done
    echo "$_last"
}

pkg=$("$here/kernel-pkg.sh" name)
deb=""
if [ -n "$pkg" ]; then
    ver=$("$here/kernel-pkg.sh" version)
    # apt-get download names the file with ':' in the version as %3a.
    deb=$(last_match "$cache/${pkg}_$(echo "$ver" | sed 's/:/%3a/')_amd64.deb")
    if [ -z "$deb" ]; then
        echo "images: downloading $pkg $ver"
        # As root apt warns that its _apt user cannot write the folder;
        # harmless, so that line is filtered out.
        if ! (cd "$cache" && apt-get download -q "$pkg=$ver") >"$work/apt-download.log" 2>&1; then
            grep -v unsandboxed "$work/apt-download.log" >&2 || true
            echo "images: download of $pkg failed" >&2
        fi
        deb=$(last_match "$cache/${pkg}_*_amd64.deb")
    fi
fi
if [ -z "$deb" ]; then
    # Offline, or apt lists missing: use the newest package already cached.
    deb=$(last_match "$cache/linux-image-6.1.0-*-cloud-amd64_*_amd64.deb")
    [ -n "$deb" ] || die "cannot get the Debian cloud kernel: run 'apt-get update' (the package linux-image-cloud-amd64 must be known to apt, and the mirror reachable once)"
    echo "images: using cached ${deb##*/}"
fi

rm -rf "$work/kernel"
mkdir -p "$work/kernel"
dpkg-deb -x "$deb" "$work/kernel"
vmlinuz=$(last_match "$work/kernel/boot/vmlinuz-*")
[ -n "$vmlinuz" ] || die "$deb holds no /boot/vmlinuz-*"
kver=${vmlinuz##*/vmlinuz-}
moddir=$work/kernel/lib/modules/$kver
[ -d "$moddir" ] || die "$deb holds no /lib/modules/$kver"
# The package leaves modules.dep to depmod at install time: make it here
# (busybox depmod; kmod is not needed).
busybox depmod -b "$work/kernel" "$kver"
[ -s "$moddir/modules.dep" ] || die "depmod made no modules.dep for $kver"

cp "$vmlinuz" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
{
    echo "KVER='$kver'"
    echo "KPKG='$(dpkg-deb -f "$deb" Package)'"
    echo "KPKG_VERSION='$(dpkg-deb -f "$deb" Version)'"
    echo "KDEB='${deb##*/}'"
} >"$work/kernel.env"
echo "images: kernel $kver from ${deb##*/}"
