# Shared helpers for the integration tests (POSIX sh).  Each test counts its
# checks and ends with "N passed, N failed"; a missing hypervisor is a
# failure, never a skip.

PASS=0
FAIL=0
CYRANGE=${CYRANGE:-./build/cyrange}
URI=${CYRANGE_URI:-qemu:///system}

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

# check "description" command...
check() {
    desc=$1
    shift
    if "$@" >"$TMP/out" 2>&1; then
        ok "$desc"
    else
        not_ok "$desc"
        sed 's/^/       | /' "$TMP/out" | tail -20
    fi
}

# check_fails "description" command...: the command must fail.
check_fails() {
    desc=$1
    shift
    if "$@" >"$TMP/out" 2>&1; then
        not_ok "$desc (unexpectedly succeeded)"
        sed 's/^/       | /' "$TMP/out" | tail -20
    else
        ok "$desc"
    fi
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}

require_hypervisor() {
    if ! virsh -c "$URI" version >/dev/null 2>&1; then
        not_ok "libvirtd answers on $URI (run 'make deps'; integration tests never skip)"
        finish
        exit 1
    fi
    ok "libvirtd answers on $URI"
    if [ ! -e build/images/vmlinuz ]; then
        not_ok "guest images exist (run 'make images')"
        finish
        exit 1
    fi
}

# Objects of an exercise that libvirt or the state folder still hold.
leftovers() { # exercise
    ex=$1
    {
        virsh -c "$URI" list --all --name | grep "^$ex-t[0-9][0-9]-" || true
        virsh -c "$URI" net-list --all --name | grep "^$ex-t[0-9][0-9]-" || true
        if virsh -c "$URI" pool-info cyrange >/dev/null 2>&1; then
            virsh -c "$URI" vol-list cyrange | awk 'NR>2 {print $1}' | grep "^$ex-t[0-9][0-9]-" || true
        fi
        [ -e "/var/lib/cyrange/$ex" ] && echo "/var/lib/cyrange/$ex"
    } | sed '/^$/d'
}

no_leftovers() { # exercise
    left=$(leftovers "$1")
    if [ -n "$left" ]; then
        echo "left behind:"
        echo "$left"
        return 1
    fi
    return 0
}
