# Helpers for the role images' /etc/cyrange/start-services (sourced, POSIX
# sh).  start-services may run again whenever the agent re-applies a config,
# so every service is stopped before it is started: running it twice is
# harmless.
# shellcheck shell=sh

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
# busybox-static's shell runs its applets before anything on PATH; ip must
# be iproute2's.
ip() { /usr/bin/ip "$@"; }
# One pid file per service, named as in the scenario (ssh http smtp ftp
# dns dhcp proxy …): impact.service_stop and the trainees find the daemon
# there.
SVC_RUN=/run/cyrange/services
SVC_LOG=/var/log/start-services.log
mkdir -p "$SVC_RUN" /var/log

# svc_log MSG: one line to start-services.log and syslog.
svc_log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') $*" >>"$SVC_LOG"
    logger -t start-services "$*" 2>/dev/null || true
}

# svc_load_env: read /etc/cyrange/host.env (KEY='value' lines written by the
# agent; see agents/PROTOCOL.md) and set defaults for what is missing.
svc_load_env() {
    if [ -r /etc/cyrange/host.env ]; then
        # shellcheck disable=SC1091
        . /etc/cyrange/host.env
    else
        svc_log "no /etc/cyrange/host.env: using the role defaults"
    fi
    : "${CYR_ROLE:=$(cat /etc/cyrange/role 2>/dev/null || echo unknown)}"
    : "${CYR_SERVICES=$(cat /etc/cyrange/services 2>/dev/null)}"
    : "${CYR_HOST:=$(hostname)}"
    : "${CYR_DOMAIN:=}"
    : "${CYR_IFACES:=}"
    : "${CYR_DNS:=}"
    : "${CYR_GATEWAY:=}"
}

# svc_wanted NAME: true when NAME is in CYR_SERVICES.
svc_wanted() {
    case " $CYR_SERVICES " in
    *" $1 "*) return 0 ;;
    esac
    return 1
}

# svc_stop NAME: stop what svc_start NAME started (its whole process group).
# The pid file may be stale (an attacker killed the daemon and the pid was
# reused): only a process that still leads its own session is ours.
svc_stop() {
    _pidf="$SVC_RUN/$1.pid"
    [ -s "$_pidf" ] || return 0
    _pid=$(cat "$_pidf")
    _sid=$(sed 's/.*) //' "/proc/$_pid/stat" 2>/dev/null | cut -d' ' -f4)
    if [ "$_sid" = "$_pid" ] && kill -0 "$_pid" 2>/dev/null; then
        kill -TERM "-$_pid" 2>/dev/null || kill -TERM "$_pid" 2>/dev/null || true
        _i=0
        while kill -0 "$_pid" 2>/dev/null && [ "$_i" -lt 20 ]; do
            sleep 0.1
            _i=$((_i + 1))
        done
        kill -KILL "-$_pid" 2>/dev/null || true
    fi
    rm -f "$_pidf"
}

# svc_start NAME LOGFILE CMD [ARGS...]: run a foreground daemon in its own
# session (so svc_stop can end it and its children), output appended to
# LOGFILE.
svc_start() {
    _name=$1
    _logf=$2
    shift 2
    svc_stop "$_name"
    touch "$_logf"
    # Close descriptors the caller (the agent) may have left open, so that
    # no daemon keeps the agent channel busy after an agent restart.
    setsid "$@" >>"$_logf" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    echo $! >"$SVC_RUN/$_name.pid"
    svc_log "started $_name (pid $!): $*"
}

# svc_if_addr IFACE: the CIDR address of an interface from host.env
# (CYR_IF_<name>_ADDR), or from the interface itself when the env has
# "dhcp" or nothing.
svc_if_addr() {
    _var=$(echo "CYR_IF_$1_ADDR" | tr -c 'A-Za-z0-9_\n' '_')
    eval "_a=\${$_var:-}"
    if [ -z "$_a" ] || [ "$_a" = dhcp ]; then
        _a=$(ip -4 -o addr show dev "$1" 2>/dev/null | awk '{print $4; exit}')
    fi
    echo "$_a"
}

# svc_if_segment IFACE: the segment name of an interface (may be empty).
svc_if_segment() {
    _var=$(echo "CYR_IF_$1_SEGMENT" | tr -c 'A-Za-z0-9_\n' '_')
    eval "echo \"\${$_var:-}\""
}

# svc_ifaces: the interface names, from host.env or the kernel.
svc_ifaces() {
    if [ -n "$CYR_IFACES" ]; then
        echo "$CYR_IFACES"
    else
        ip -o link show | awk -F': ' '$2 != "lo" { sub(/@.*/, "", $2); print $2 }' | tr '\n' ' '
    fi
}

# svc_net CIDR: the network of an address, as a.b.c.d/len.
svc_net() {
    echo "$1" | awk -F/ '{
        n = split($1, o, "."); len = ($2 == "" ? 32 : $2 + 0)
        ip = ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4]
        size = 2 ^ (32 - len); net = ip - (ip % size)
        printf "%d.%d.%d.%d/%d\n", int(net / 16777216) % 256, int(net / 65536) % 256,
            int(net / 256) % 256, net % 256, len }'
}

# svc_ssh: dropbear on port 22 with password logins; host keys are made on
# first use (-R) and kept in /etc/dropbear.
svc_ssh() {
    mkdir -p /etc/dropbear
    svc_start ssh /var/log/sshd.log dropbear -F -E -R -p 22
}

# svc_dns_hosts FILE: write the range's names for dnsmasq: the scenario's
# /etc/cyrange/hosts (hosts(5) format, delivered as a config file) when
# present, then CYR_DNS_RECORDS ("name=addr ..."), then this host itself.
svc_dns_hosts() {
    _out=$1
    : >"$_out"
    if [ -r /etc/cyrange/hosts ]; then
        grep -v '^[[:space:]]*#' /etc/cyrange/hosts >>"$_out" || true
    fi
    for _r in ${CYR_DNS_RECORDS:-}; do
        _n=${_r%%=*}
        _a=${_r#*=}
        [ -n "$_n" ] && [ -n "$_a" ] && [ "$_n" != "$_r" ] && echo "$_a $_n" >>"$_out"
    done
    for _i in $(svc_ifaces); do
        _a=$(svc_if_addr "$_i")
        [ -n "$_a" ] && echo "${_a%/*} $CYR_HOST" >>"$_out"
    done
    return 0
}

# svc_dnsmasq: what this host serves with dnsmasq, as two daemons so that
# each service stops on its own: "dns" (when in CYR_SERVICES) answers for
# CYR_DOMAIN from svc_dns_hosts; "dhcp" serves every LAN in CYR_DHCP_SERVE
# ("iface,first,last,gateway,dns ..."; also when "dhcp" is not named, as
# before).  Both log to /var/log/dnsmasq.log.
svc_dnsmasq() {
    _dhcp=${CYR_DHCP_SERVE:-}
    touch /var/log/dnsmasq.log
    chown dnsmasq /var/log/dnsmasq.log
    if svc_wanted dns; then
        set -- dnsmasq -k --conf-file=/dev/null --user=dnsmasq --group=nogroup \
            --pid-file --log-facility=/var/log/dnsmasq.log
        svc_dns_hosts /run/cyrange/dns-hosts
        set -- "$@" --no-hosts --addn-hosts=/run/cyrange/dns-hosts --log-queries
        if [ -n "${CYR_DNS_UPSTREAM:-}" ]; then
            set -- "$@" --no-resolv --server="$CYR_DNS_UPSTREAM"
        else
            # No upstream: the range has no real internet; answer locally.
            set -- "$@" --no-resolv
        fi
        if [ -n "$CYR_DOMAIN" ]; then
            set -- "$@" --local="/$CYR_DOMAIN/" --expand-hosts --domain="$CYR_DOMAIN"
            _mx=${CYR_DNS_MX:-}
            if [ -z "$_mx" ] && grep -qE "[[:space:]](mail|mx)([[:space:]]|$)" /run/cyrange/dns-hosts; then
                _mx=$(awk '$2 == "mail" || $2 == "mx" { print $2; exit }' /run/cyrange/dns-hosts)
            fi
            [ -n "$_mx" ] && set -- "$@" --mx-host="$CYR_DOMAIN,$_mx.$CYR_DOMAIN,10"
        fi
        svc_start dns /var/log/dnsmasq.log "$@"
    else
        svc_stop dns
    fi
    if [ -z "$_dhcp" ]; then
        svc_stop dhcp
        return 0
    fi
    # DHCP only (--port=0: no DNS from this one).
    set -- dnsmasq -k --conf-file=/dev/null --user=dnsmasq --group=nogroup \
        --pid-file --log-facility=/var/log/dnsmasq.log --port=0
    _n=0
    for _e in $_dhcp; do
        IFS=, read -r _if _first _last _gw _dns <<EOT
$_e
EOT
        if [ -z "$_if" ] || [ -z "$_first" ] || [ -z "$_last" ]; then
            svc_log "dhcp: bad CYR_DHCP_SERVE entry '$_e'"
            continue
        fi
        _n=$((_n + 1))
        set -- "$@" --interface="$_if" --dhcp-range="set:lan$_n,$_first,$_last,1h"
        [ -n "$_gw" ] && set -- "$@" --dhcp-option="tag:lan$_n,option:router,$_gw"
        [ -n "$_dns" ] && set -- "$@" --dhcp-option="tag:lan$_n,option:dns-server,$_dns"
    done
    if [ "$_n" -eq 0 ]; then
        svc_stop dhcp
        return 0
    fi
    mkdir -p /var/lib/misc
    touch /var/lib/misc/dnsmasq.leases
    chown dnsmasq /var/lib/misc/dnsmasq.leases
    set -- "$@" --dhcp-authoritative --log-dhcp --dhcp-leasefile=/var/lib/misc/dnsmasq.leases
    [ -n "$CYR_DOMAIN" ] && set -- "$@" --domain="$CYR_DOMAIN"
    svc_start dhcp /var/log/dnsmasq.log "$@"
}
