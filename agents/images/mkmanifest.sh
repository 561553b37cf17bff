#!/bin/sh
# mkmanifest.sh WORK OUT AGENT: write OUT/images.json, the manifest the
# orchestrator reads: the kernel, each role's initramfs (size, sha256, the
# services its start-services can run, with their ports, and its tools), the
# disk-boot initramfs and the test base disk.  Paths are relative to OUT.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

work=${1:?usage: mkmanifest.sh WORK OUT AGENT}
out=${2:?usage: mkmanifest.sh WORK OUT AGENT}
agent=${3:?usage: mkmanifest.sh WORK OUT AGENT}
# shellcheck disable=SC1091
. "$work/kernel.env"

# file_obj NAME: {"path":…,"size":…,"sha256":…} for OUT/NAME.
file_obj() {
    printf '{"path": "%s", "size": %s, "sha256": "%s"}' "$1" "$(fsize "$out/$1")" "$(sha256 "$out/$1")"
}

# json_list WORDS...: ["a", "b"]
json_list() {
    printf '['
    _sep=""
    for _w in "$@"; do
        printf '%s"%s"' "$_sep" "$_w"
        _sep=", "
    done
    printf ']'
}

# service_obj ROLE NAME: what a service is, where it listens, where it logs,
# its pid file (start-services writes one per service).
service_obj() {
    _pf=", \"pidfile\": \"/run/cyrange/services/$2.pid\""
    case $1:$2 in
    attacker:http) printf '{"name": "http", "ports": ["80/tcp"], "daemon": "mini-c2d", "log": "/var/log/c2-http.log", "beacons": "/var/log/c2-beacons.log"%s}' "$_pf" ;;
    attacker:dns) printf '{"name": "dns", "ports": ["53/udp", "53/tcp"], "daemon": "dnsmasq", "log": "/var/log/c2-dns.log"%s}' "$_pf" ;;
    *:ssh) printf '{"name": "ssh", "ports": ["22/tcp"], "daemon": "dropbear", "log": "/var/log/sshd.log"%s}' "$_pf" ;;
    *:http) printf '{"name": "http", "ports": ["80/tcp"], "daemon": "busybox httpd", "log": "/var/log/httpd.log"%s}' "$_pf" ;;
    *:smtp) printf '{"name": "smtp", "ports": ["25/tcp"], "daemon": "mini-smtpd", "log": "/var/log/mail.log"%s}' "$_pf" ;;
    *:dns) printf '{"name": "dns", "ports": ["53/udp", "53/tcp"], "daemon": "dnsmasq", "log": "/var/log/dnsmasq.log"%s}' "$_pf" ;;
    *:ftp) printf '{"name": "ftp", "ports": ["21/tcp", "30000-30099/tcp"], "daemon": "mini-ftpd", "log": "/var/log/ftp.log"%s}' "$_pf" ;;
    *:dhcp) printf '{"name": "dhcp", "ports": ["67/udp"], "daemon": "dnsmasq", "log": "/var/log/dnsmasq.log"%s}' "$_pf" ;;
    *:proxy) printf '{"name": "proxy", "ports": ["3128/tcp"], "daemon": "tinyproxy", "log": "/var/log/proxy.log"%s}' "$_pf" ;;
    *) printf '{"name": "%s"%s}' "$2" "$_pf" ;;
    esac
}

# What each role's start-services can start (CYR_SERVICES picks from it).
offered() {
    case $1 in
    router) echo "ssh dhcp proxy dns" ;;
    server) echo "ssh http smtp dns ftp dhcp" ;;
    workstation) echo "ssh" ;;
    attacker) echo "ssh http dns" ;;
    esac
}

# tools ROLE: the notable programs in the role's tree.
tools() {
    _r=$work/rootfs/$1
    for _t in busybox ip tcpdump iptables dropbear dbclient dnsmasq tinyproxy sqlite3 \
        mini-smtpd mini-ftpd mini-c2d crond nc wget httpd udhcpc browse readmail sendmail-nc; do
        for _d in usr/sbin usr/bin usr/local/bin; do
            if [ -e "$_r/$_d/$_t" ] || [ -L "$_r/$_d/$_t" ]; then
                echo "$_t"
                break
            fi
        done
    done | tr '\n' ' '
}

tmp=$out/images.json.tmp
{
    echo "{"
    echo '  "format": 1,'
    printf '  "kernel": {"file": %s, "version": "%s", "package": "%s", "package_version": "%s", "deb": "%s"},\n' \
        "$(file_obj vmlinuz)" "$KVER" "$KPKG" "$KPKG_VERSION" "$KDEB"
    echo '  "cmdline": "console=ttyS0 cyrange.exercise=NAME cyrange.team=N cyrange.host=NAME",'
    echo '  "agent": {"path": "/sbin/cyrange-agent", "channel": "org.cyrange.agent.0", "sha256": "'"$(sha256 "$agent")"'"},'
    echo '  "roles": {'
    sep=""
    for role in router server workstation attacker; do
        [ -n "$sep" ] && printf ',\n'
        printf '    "%s": {\n' "$role"
        printf '      "initrd": %s,\n' "$(file_obj "$role.cpio.gz")"
        printf '      "kernel": "vmlinuz",\n'
        # shellcheck disable=SC2046 # word lists
        printf '      "default_services": %s,\n' "$(json_list $(cat "$here/rootfs/$role/etc/cyrange/services"))"
        printf '      "services": ['
        s2=""
        for s in $(offered "$role"); do
            printf '%s%s' "$s2" "$(service_obj "$role" "$s")"
            s2=", "
        done
        printf '],\n'
        # shellcheck disable=SC2046
        printf '      "tools": %s,\n' "$(json_list $(tools "$role"))"
        printf '      "memory_mib": 160\n'
        printf '    }'
        sep=1
    done
    printf '\n  },\n'
    printf '  "disk_boot": {"initrd": %s, "kernel": "vmlinuz", "cmdline": "console=ttyS0 root=/dev/vda"},\n' \
        "$(file_obj disk-boot.cpio.gz)"
    printf '  "base_disks": {"base-test": {"file": %s, "format": "qcow2", "fs": "ext4", "boot": "disk_boot", "root": "/dev/vda"}}\n' \
        "$(file_obj base-test.qcow2)"
    echo "}"
} >"$tmp"
if command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool "$tmp" >/dev/null || die "images.json is not valid JSON"
fi
mv "$tmp" "$out/images.json"
echo "images: manifest -> $out/images.json"
