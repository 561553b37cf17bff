# Shared helpers for the image build scripts (sourced, POSIX sh).
# shellcheck shell=sh

# die MSG: print to stderr and stop the build.
die() {
    echo "images: $*" >&2
    exit 1
}

# need_pkg PKG PATH...: fail with a message naming the Debian package when
# one of the files it provides is missing.
need_pkg() {
    _pkg=$1
    shift
    for _f in "$@"; do
        [ -e "$_f" ] || die "missing $_f: install the Debian package '$_pkg' (make deps, or apt-get install $_pkg)"
    done
}

# need_cmd PKG CMD: like need_pkg for a command on PATH.
need_cmd() {
    command -v "$2" >/dev/null 2>&1 ||
        die "missing command '$2': install the Debian package '$1' (make deps, or apt-get install $1)"
}

# copy_file SRC ROOT [DEST]: copy SRC (following symlinks) to ROOT/DEST
# (default: the same path), keeping the mode.
copy_file() {
    _dst=${3:-$1}
    mkdir -p "$2$(dirname "$_dst")"
    rm -f "$2$_dst"
    cp -L --preserve=mode "$1" "$2$_dst"
}

# copy_elf SRC ROOT [DEST]: copy a dynamically linked program or library and
# every shared library ldd lists for it.  Libraries land at the path ldd
# reports, which the image's usr-merged layout keeps valid.
copy_elf() {
    copy_file "$1" "$2" "${3:-}"
    ldd "$1" 2>/dev/null | awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }' | while read -r _lib; do
        _real=$(readlink -f "$_lib")
        # Keep the soname the loader asks for; store the real file under it.
        [ -e "$2$_lib" ] || copy_file "$_real" "$2" "$_lib"
    done
}

# mod_closure MODDIR NAME...: print, one per line, the modules.dep paths of
# the named modules and everything they depend on.  Names that are built into
# the kernel (modules.builtin) are skipped silently; unknown names fail.
mod_closure() {
    _md=$1
    shift
    for _m in "$@"; do
        _line=$(grep -E "(^|/)${_m}\.ko(\.[a-z]+)?:" "$_md/modules.dep" || true)
        if [ -z "$_line" ]; then
            if grep -qE "(^|/)${_m}\.ko$" "$_md/modules.builtin"; then
                continue
            fi
            die "kernel module '$_m' is neither a module nor built in"
        fi
        echo "$_line" | tr ' ' '\n' | sed -e 's/:$//' -e '/^$/d'
    done | sort -u
}

# sha256 FILE: the hex digest.
sha256() {
    sha256sum "$1" | cut -d' ' -f1
}

# fsize FILE: size in bytes.
fsize() {
    stat -c %s "$1"
}
