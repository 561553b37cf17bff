#!/bin/sh
# boot-test.sh [IMAGES_DIR]: boot the role images and the test base disk
# under libvirt (qemu:///system, TCG) and check them for real:
#   1. each role alone: boots to the agent start (boot time from the console
#      log), the agent says hello on its channel;
#   2. the base-test disk through disk-boot.cpio.gz: the same;
#   3. router + server + workstation together on one L2-only network: config
#      messages over the agent channel, then the services listen, the web
#      application answers (and is vulnerable), mail, FTP, DNS, ssh, DHCP
#      and the proxy (allowed and refused) work.
# Uses only 198.18.0.0/15 addresses and names prefixed dev-img-, and removes
# every domain and network it made.  Needs root, libvirtd and python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
img=$(cd "${1:-build/images}" && pwd)
state=/var/lib/cyrange/dev-images
net=dev-img-net
bridge=devimg0
mem=${DEV_IMG_MEM_MIB:-160}
V="virsh -q -c qemu:///system"
ctl="python3 $here/agentctl.py"
pass=0
fail=0

ok() {
    pass=$((pass + 1))
    echo "ok   $*"
}
bad() {
    fail=$((fail + 1))
    echo "FAIL $*"
}

cleanup() {
    for d in $($V list --all --name 2>/dev/null | grep '^dev-img-' || true); do
        $V destroy "$d" >/dev/null 2>&1 || true
        $V undefine "$d" >/dev/null 2>&1 || true
    done
    if $V net-info "$net" >/dev/null 2>&1; then
        $V net-destroy "$net" >/dev/null 2>&1 || true
        $V net-undefine "$net" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v python3 >/dev/null || {
    echo "boot-test: python3 is needed"
    exit 1
}
$V version >/dev/null || {
    echo "boot-test: libvirtd does not answer on qemu:///system (scripts/libvirtd-start.sh)"
    exit 1
}
cleanup

mkdir -p "$state"
chmod 755 /var/lib/cyrange "$state"
for f in vmlinuz router.cpio.gz server.cpio.gz workstation.cpio.gz attacker.cpio.gz \
    disk-boot.cpio.gz; do
    cp "$img/$f" "$state/$f"
done
# The disk is written by the guest: boot a copy.
cp "$img/base-test.qcow2" "$state/base-test.qcow2"
chmod 644 "$state"/*

cat >"$state/net.xml" <<EOF
<network>
  <name>$net</name>
  <bridge name='$bridge' stp='off' delay='0'/>
</network>
EOF
$V net-create "$state/net.xml" >/dev/null

# domain NAME MAC KIND [MAC...]: start a transient TCG domain; KIND is a
# role (direct kernel boot of ROLE.cpio.gz) or "disk" (disk-boot +
# base-test); more MACs add more NICs on the same network.
domain() {
    name=$1 mac=$2 kind=$3
    shift 3
    nics=""
    for m in "$mac" "$@"; do
        nics="$nics<interface type='network'><source network='$net'/><mac address='$m'/><model type='virtio'/></interface>
    "
    done
    rm -f "$state/$name.console.log" "$state/$name.sock"
    if [ "$kind" = disk ]; then
        initrd=$state/disk-boot.cpio.gz
        cmdline="console=ttyS0 root=/dev/vda cyrange.exercise=dev-img cyrange.team=1 cyrange.host=$name"
        disk="<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$state/base-test.qcow2'/><target dev='vda' bus='virtio'/></disk>"
    else
        initrd=$state/$kind.cpio.gz
        cmdline="console=ttyS0 cyrange.exercise=dev-img cyrange.team=1 cyrange.host=$name"
        disk=""
    fi
    cat >"$state/$name.xml" <<EOF
<domain type='qemu'>
  <name>dev-img-$name</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$state/vmlinuz</kernel>
    <initrd>$initrd</initrd>
    <cmdline>$cmdline</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    $disk
    $nics
    <serial type='file'>
      <source path='$state/$name.console.log'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <source mode='bind' path='$state/$name.sock'/>
      <target type='virtio' name='org.cyrange.agent.0'/>
    </channel>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
    $V create "$state/$name.xml" >/dev/null
}

# now_ms: wall clock in milliseconds.
now_ms() {
    python3 -c 'import time; print(int(time.time() * 1000))'
}

# wait_console NAME PATTERN SECONDS: wait until the console log has PATTERN.
wait_console() {
    i=0
    while [ "$i" -lt $(($3 * 10)) ]; do
        grep -q "$2" "$state/$1.console.log" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# boot_one NAME MAC KIND [MAC...]: boot, time it, check the hello, leave it
# running.
boot_one() {
    t0=$(now_ms)
    domain "$@"
    if wait_console "$1" "cyrange: starting agent" 60; then
        t1=$(now_ms)
        up=$(sed -n 's/.*cyrange: starting agent at \([0-9.]*\) s.*/\1/p' "$state/$1.console.log" | head -n 1)
        ok "$1: agent started $(((t1 - t0) / 100 / 10)).$(((t1 - t0) / 100 % 10)) s after create (guest uptime $up s)"
    else
        bad "$1: no 'cyrange: starting agent' on the console within 60 s"
        tail -n 20 "$state/$1.console.log" 2>/dev/null || true
        return 0
    fi
    if hello=$($ctl "$state/$1.sock" hello 30 2>&1); then
        t2=$(now_ms)
        ok "$1: hello $(((t2 - t0) / 100 / 10)).$(((t2 - t0) / 100 % 10)) s after create: $(echo "$hello" | cut -c1-160)"
    else
        bad "$1: no hello from the agent: $hello"
    fi
}

# x NAME CMD: run CMD in the guest through the agent.
x() {
    $ctl "$state/$1.sock" exec "$2" 60
}

# check NAME DESCRIPTION CMD PATTERN: CMD's output in NAME matches PATTERN.
check() {
    # One line, so patterns can span the output's lines.
    out=$(x "$1" "$3" 2>&1 | tr '\n' ' ' || true)
    if printf '%s\n' "$out" | grep -qE -- "$4"; then
        ok "$1: $2"
    else
        bad "$1: $2 (wanted /$4/, got: $(printf '%s' "$out" | cut -c1-300))"
    fi
}

echo "== single boots (TCG, 1 vCPU, $mem MiB)"
n=1
for role in router server workstation attacker; do
    boot_one "$role" "52:54:00:de:01:0$n" "$role"
    check "$role" "busybox syslogd writes /var/log/messages" "logger -t boottest hello; sleep 0.3; tail -n 5 /var/log/messages" "boottest"
    check "$role" "tools: tcpdump, iptables, ip" \
        "tcpdump --version 2>&1 | head -n 1; iptables -L -n | head -n 1; /usr/bin/ip -V; ENV=/etc/cyrange/shrc sh -i -c 'ip -V' 2>&1" "tcpdump version.*Chain INPUT.*ip utility, iproute2.*ip utility, iproute2"
    if [ "$role" = attacker ]; then
        # init must bring the agent back when it dies.
        # shellcheck disable=SC2016 # expanded in the guest
        x attacker '(sleep 1; kill $(pidof cyrange-agent)) >/dev/null 2>&1 &' >/dev/null 2>&1 || true
        sleep 4
        check attacker "agent respawned after being killed" \
            "grep -c 'starting agent' /var/log/messages; cat /var/log/messages" "^[2-9] .*agent exited"
    fi
    $V destroy "dev-img-$role" >/dev/null 2>&1 || true
    n=$((n + 1))
done

echo "== base-test disk through disk-boot.cpio.gz"
boot_one disk "52:54:00:de:01:09" disk
check disk "root is /dev/vda (ext4, rw)" "grep ' / ' /proc/mounts" "^/dev/vda / ext4 rw"
$V destroy dev-img-disk >/dev/null 2>&1 || true

echo "== router with three segments: the firewall's policy"
boot_one fw 52:54:00:de:03:01 router 52:54:00:de:03:02 52:54:00:de:03:03
if $ctl "$state/fw.sock" request '{"t":"config","hostname":"fw",
 "ifaces":[{"mac":"52:54:00:de:03:01","addr":"198.18.0.1","prefix":24},{"mac":"52:54:00:de:03:02","addr":"198.18.1.1","prefix":24},
           {"mac":"52:54:00:de:03:03","addr":"198.18.2.1","prefix":24}],
 "env":{"CYR_SERVICES":"proxy","CYR_IFACES":"eth0 eth1 eth2","CYR_IF_eth0_SEGMENT":"internet","CYR_IF_eth1_SEGMENT":"office",
        "CYR_IF_eth2_SEGMENT":"dmz","CYR_PROXY_ALLOW":"example.test"}}' 60 >"$state/fw.config.json"; then
    ok "fw: config applied"
else
    bad "fw: config: $(cat "$state/fw.config.json")"
fi
check fw "segments classified" "sleep 2; cat /var/log/start-services.log" "external=\\[ eth0 \\] dmz=\\[ eth2 \\] lan=\\[ ?eth1 ?\\]"
check fw "office<->dmz forwarded both ways" "iptables -S FORWARD" "-A FORWARD -i eth1 -o eth2 .*ACCEPT.*-A FORWARD -i eth2 -o eth1 .*ACCEPT"
check fw "dmz->internet allowed, internet->dmz only published ports" "iptables -S FORWARD" "-A FORWARD -i eth2 -o eth0 .*ACCEPT.*-A FORWARD -i eth0 -o eth2 -p tcp -m tcp --dport 80 .*ACCEPT"
check fw "office->internet only logged then dropped (proxy only)" "iptables -S FORWARD | grep -c 'i eth1 -o eth0.*ACCEPT'; iptables -S FORWARD" "^0 .*-A FORWARD -i eth1 -o eth0 .*LOG"
check fw "input from the internet dropped, proxy reachable from inside" "iptables -S INPUT" "-A INPUT -i eth1 -j ACCEPT.*-A INPUT -j DROP"
check fw "conntrack and LOG modules loaded on demand" "lsmod" "xt_conntrack.*|xt_LOG"
$V destroy dev-img-fw >/dev/null 2>&1 || true

echo "== router + server + workstation on $net"
boot_one router 52:54:00:de:02:01 router
boot_one server 52:54:00:de:02:02 server
boot_one workstation 52:54:00:de:02:03 workstation

acct='"accounts":[{"name":"root","password":"dev-img-root"},{"name":"alice","password":"Alice-pw-1","groups":["users"]}]'
if $ctl "$state/router.sock" request '{"t":"config","exercise":"dev-img","team":1,"host":"router","role":"router","hostname":"router",
 "ifaces":[{"mac":"52:54:00:de:02:01","addr":"198.18.1.1","prefix":24}],"dns":["198.18.1.10"],'"$acct"',
 "env":{"CYR_SERVICES":"ssh dhcp proxy","CYR_DOMAIN":"example.test",
        "CYR_DHCP_SERVE":"eth0,198.18.1.100,198.18.1.150,198.18.1.1,198.18.1.10",
        "CYR_PROXY_ALLOW":"198.18.1.10 www.example.test","CYR_IF_eth0_SEGMENT":"office"}}' 60 >"$state/router.config.json"; then
    ok "router: config applied"
else
    bad "router: config: $(cat "$state/router.config.json")"
fi
if $ctl "$state/server.sock" request '{"t":"config","exercise":"dev-img","team":1,"host":"www","role":"server","hostname":"www",
 "ifaces":[{"mac":"52:54:00:de:02:02","addr":"198.18.1.10","prefix":24}],"gateway":"198.18.1.1","dns":["198.18.1.10"],'"$acct"',
 "env":{"CYR_SERVICES":"http smtp dns ftp ssh","CYR_DOMAIN":"example.test",
        "CYR_DNS_RECORDS":"router=198.18.1.1 mail=198.18.1.10 proxy=198.18.1.1"}}' 60 >"$state/server.config.json"; then
    ok "server: config applied"
else
    bad "server: config: $(cat "$state/server.config.json")"
fi
if $ctl "$state/workstation.sock" request '{"t":"config","exercise":"dev-img","team":1,"host":"pc1","role":"workstation","hostname":"pc1",
 "ifaces":[{"mac":"52:54:00:de:02:03","dhcp":true}],'"$acct"',
 "env":{"CYR_SERVICES":"ssh","CYR_PROXY":"198.18.1.1:3128","CYR_DOMAIN":"example.test"}}' 60 >"$state/workstation.config.json"; then
    ok "workstation: config applied"
else
    bad "workstation: config: $(cat "$state/workstation.config.json")"
fi

# Services come up in the background after the config reply.
sleep 3
check router "ssh listens on 22" "sleep 2; netstat -ltn" ":22 "
check router "proxy listens on 3128" "netstat -ltn" ":3128 "
check router "dnsmasq serves DHCP on 67/udp" "netstat -lun" ":67 "
check router "ip forwarding on" "cat /proc/sys/net/ipv4/ip_forward" "^1"
check router "firewall: FORWARD policy DROP, rules loaded" "iptables -S FORWARD" "-P FORWARD DROP"
for p in 80 25 21 22 53; do
    check server "listens on $p/tcp" "netstat -ltn" ":$p "
done
check router "web app answers from the router" "wget -qO- http://198.18.1.10/" "Welcome to the intranet"
check router "SQL injection logs in as admin" \
    "wget -qO- --post-data \"user=admin'--&pass=x\" http://198.18.1.10/cgi-bin/login.cgi" "Welcome, Site Administrator"
check router "SQL injection UNION dumps passwords" \
    "wget -qO- --post-data \"user=x' UNION SELECT username,password,role FROM users--&pass=x\" http://198.18.1.10/cgi-bin/login.cgi" "Adm1n#2024"
check router "path traversal reads /etc/passwd" \
    "wget -qO- 'http://198.18.1.10/cgi-bin/view.cgi?file=../../../etc/passwd'" "root:x:0:0"
check router "command injection runs id as www-data" \
    "wget -qO- 'http://198.18.1.10/cgi-bin/ping.cgi?host=127.0.0.1%3Bid'" "uid=33\\(www-data\\)"
check server "access log has common-log lines" "cat /var/log/httpd.log" "^198\\.18\\.1\\.1 - - \\[.*\\] \"GET / HTTP/1\\.1\" 200 .*198\\.18\\.1\\.1 - - \\[.*\\] \"POST /cgi-bin/login.cgi HTTP/1\\.[01]\" 200"
check router "SMTP delivers to /var/mail/alice" \
    "printf 'Subject: test\\n\\nhello alice\\n' | sendmail-nc 198.18.1.10 boss@example.test alice@example.test 'Invoice' 2>&1; echo sent" "sent"
check server "mailbox /var/mail/alice" "sleep 1; cat /var/mail/alice; tail -n 3 /var/log/mail.log" "hello alice"
check router "SMTP AUTH PLAIN with the real password" \
    "printf 'EHLO r\\r\\nAUTH PLAIN %s\\r\\nAUTH PLAIN %s\\r\\nQUIT\\r\\n' \$(printf 'x\\0alice\\0wrong' | base64) \$(printf 'x\\0alice\\0Alice-pw-1' | base64) | nc -w 5 198.18.1.10 25" "535 .*235 2.7.0"
check server "mail.log records the failed and good AUTH" "cat /var/log/mail.log" "auth failed mech=PLAIN user=alice.*auth ok mech=PLAIN user=alice"
check router "FTP login and download from the share" \
    "cd /tmp && ftpget -u alice -p Alice-pw-1 198.18.1.10 pl.csv public/phone-list.csv && cat pl.csv" "Mika Tanaka"
check server "ftp.log records the transfer" "cat /var/log/ftp.log" "retr user=alice .*path=public/phone-list.csv"
check server "backups in /srv/backup" "ls /srv/backup/share/finance" "supplier-payments"
check router "DNS: www.example.test from the server's dnsmasq" "nslookup www.example.test 198.18.1.10" "198\\.18\\.1\\.10"
check router "DNS: MX for example.test" "nslookup -type=mx example.test 198.18.1.10" "mail\\.example\\.test"
check router "ssh with a password to the server" \
    "DROPBEAR_PASSWORD=Alice-pw-1 dbclient -y -y alice@198.18.1.10 'id; hostname' 2>&1" "uid=1000\\(alice\\).*"
check workstation "DHCP lease from the router" "sleep 2; ip -4 addr show eth0" "inet 198\\.18\\.1\\.1[0-5][0-9]/24"
check workstation "default route from the lease" "ip route" "default via 198\\.18\\.1\\.1"
check workstation "browse through the proxy: allowed site" "browse http://198.18.1.10/" "Welcome to the intranet"
check workstation "browse through the proxy: refused site" "browse http://198.18.1.11/ 2>&1; echo exit=\$?" "exit=[1-9]"
check router "proxy.log records the refusal" "cat /var/log/proxy.log" "refused on filtered domain.*198\\.18\\.1\\.11"
check router "dnsmasq.log records the lease" "cat /var/log/dnsmasq.log" "DHCPACK.*198\\.18\\.1\\.1[0-5][0-9]"
check router "tcpdump captures on the LAN" \
    "(timeout 8 tcpdump -n -c 2 -i eth0 icmp >/tmp/td.txt 2>&1 &); sleep 2; ping -c 2 198.18.1.10 >/dev/null; sleep 1; cat /tmp/td.txt" \
    "198\\.18\\.1\\.1 > 198\\.18\\.1\\.10: ICMP echo request"
check router "a getty on the console (ttyS0)" "ps" "getty -L 115200 ttyS0"

echo "console logs and XML: $state"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
