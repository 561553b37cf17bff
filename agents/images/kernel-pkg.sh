#!/bin/sh
# kernel-pkg.sh name|version: the versioned cloud kernel package that
# linux-image-cloud-amd64 depends on, or its candidate version.  Prints
# nothing when apt does not know the package (no 'apt-get update' yet).
set -eu
pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-cloud-amd64\)$/\1/p' | head -n 1)
case ${1:-name} in
name) echo "$pkg" ;;
version)
    [ -n "$pkg" ] || exit 0
    apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n 1
    ;;
*)
    echo "usage: kernel-pkg.sh name|version" >&2
    exit 2
    ;;
esac
