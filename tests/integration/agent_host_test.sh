#!/bin/sh
# agent_host_test.sh: the agent channel checked from the host side against a
# real guest.  Boots one TCG guest (direct kernel boot, a minimal initramfs:
# busybox init, the virtio modules, $BUILD/cyrange-agent respawned by init)
# with the agent's virtio-serial port bound to a UNIX socket and one NIC on
# an L2-only network, then, over the socket:
#   hello on connect (identity from the kernel command line), hello? and
#   health round trips (timed), bad input, exec (status, output, timeout
#   kill), config on the real NIC (addresses, route, hostname, files,
#   host.env, accounts through the images' busybox-syntax shims,
#   start-services once; the same config again is a no-op), probes
#   (reachable, refused, timeout, run concurrently, 127.0.0.1 refused by the
#   198.18.0.0/15 rule), and a host reconnect: a fresh hello and no stale
#   reply from the old connection.
# Needs root, libvirtd (qemu:///system), python3, busybox-static, and the
# kernel that `make images` unpacks.  Libvirt names start with dev-agent-;
# everything made is removed at the end.  Prints "N passed, N failed".
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
agent=$BUILD/cyrange-agent
kenv=$BUILD/images-work/kernel.env
state=/var/lib/cyrange/dev-agent-it
dom=dev-agent-it-g1
net=dev-agent-itnet
bridge=dvagentit0
V="virsh -q -c qemu:///system"
work=$(mktemp -d /tmp/cyrange-agent-it.XXXXXX)
pass=0
fail=0

die() {
    echo "agent_host_test: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

cleanup() {
    $V destroy "$dom" >/dev/null 2>&1 || true
    $V undefine "$dom" >/dev/null 2>&1 || true
    $V net-destroy "$net" >/dev/null 2>&1 || true
    rm -rf "$work" "$state"
}
trap cleanup EXIT
# A signal (^C, or a reader such as head going away) still tears down.
trap 'exit 1' INT TERM HUP PIPE

[ "$(id -u)" -eq 0 ] || die "needs root (libvirt qemu:///system)"
$V version >/dev/null 2>&1 || die "libvirtd does not answer on qemu:///system (make deps)"
[ -x "$agent" ] || die "$agent missing (make)"
[ -f "$kenv" ] || die "$kenv missing (make images)"
[ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"
command -v python3 >/dev/null || die "python3 missing"
. "$kenv"
kroot=$BUILD/images-work/kernel
moddir=$kroot/lib/modules/$KVER
[ -d "$moddir" ] && [ -f "$BUILD/images/vmlinuz" ] || die "kernel $KVER not unpacked (make images)"

# Leftovers of an interrupted run.
cleanup
mkdir -p "$work" "$state"
chmod 755 /var/lib/cyrange "$state"

# ---- initramfs ---------------------------------------------------------------
R=$work/root
mkdir -p "$R/bin" "$R/sbin" "$R/usr/bin" "$R/usr/sbin" "$R/usr/lib/cyrange" \
    "$R/lib/modules" "$R/etc/cyrange" "$R/proc" "$R/sys" "$R/dev" "$R/run" \
    "$R/tmp" "$R/root" "$R/var/log"
cp /bin/busybox "$R/bin/busybox"
cp "$agent" "$R/sbin/cyrange-agent"
mods="virtio_ring virtio failover net_failover virtio_pci_legacy_dev
virtio_pci_modern_dev virtio_pci virtio_net virtio_console"
for m in $mods; do
    f=$(find "$moddir" -name "$m.ko*" | head -1)
    [ -n "$f" ] || die "module $m not found in $moddir"
    case $f in
    *.ko.xz) xz -dc "$f" >"$R/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$R/lib/modules/$m.ko" ;;
    *) cp "$f" "$R/lib/modules/$m.ko" ;;
    esac
done
# Debian's busybox has no adduser/addgroup/chpasswd: the images' shims.
shims=agents/images/rootfs/common
have_shims=0
if [ -f "$shims/usr/lib/cyrange/accounts.sh" ]; then
    cp "$shims/usr/sbin/adduser" "$shims/usr/sbin/addgroup" \
        "$shims/usr/sbin/chpasswd" "$R/usr/sbin/"
    cp "$shims/usr/lib/cyrange/accounts.sh" "$R/usr/lib/cyrange/"
    have_shims=1
fi
ln -s bin/busybox "$R/init"
cat >"$R/etc/inittab" <<'EOF'
::sysinit:/etc/rcS
::respawn:/sbin/cyrange-agent --foreground
EOF
cat >"$R/etc/rcS" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
for m in $(echo $mods); do insmod /lib/modules/\$m.ko; done
EOF
chmod 755 "$R/etc/rcS"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\nusers:x:100:\n' >"$R/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$R/etc/shadow"
chmod 600 "$R/etc/shadow"
cat >"$R/etc/cyrange/start-services" <<'EOF'
#!/bin/sh
. /etc/cyrange/host.env
echo "ran services=$CYR_SERVICES" >>/run/services.txt
httpd -p 8080 -h /tmp
EOF
chmod 755 "$R/etc/cyrange/start-services"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -6) >"$state/initrd.gz"
cp "$BUILD/images/vmlinuz" "$state/vmlinuz"

# ---- network and domain --------------------------------------------------------
cat >"$work/net.xml" <<EOF
<network>
  <name>$net</name>
  <bridge name='$bridge' stp='off' delay='0'/>
</network>
EOF
cat >"$work/dom.xml" <<EOF
<domain type='${CYRANGE_DOMAIN_TYPE:-qemu}'>
  <name>$dom</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$state/vmlinuz</kernel>
    <initrd>$state/initrd.gz</initrd>
    <cmdline>console=ttyS0 cyrange.exercise=itex cyrange.team=3 cyrange.host=web panic=-1</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <serial type='file'>
      <source path='$state/console.log'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <source mode='bind' path='$state/agent.sock'/>
      <target type='virtio' name='org.cyrange.agent.0'/>
    </channel>
    <interface type='network'>
      <source network='$net'/>
      <mac address='52:54:00:da:17:01'/>
      <model type='virtio'/>
    </interface>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
$V net-create "$work/net.xml" >/dev/null || die "cannot create network $net"
$V define "$work/dom.xml" >/dev/null || die "cannot define $dom"
$V start "$dom" >/dev/null || die "cannot start $dom"

# ---- checks from the host ---------------------------------------------------------
cat >"$work/check.py" <<'EOF'
import json, socket, statistics, sys, time
sys.path.insert(0, "tests/integration")
from testlib import not_ok, ok, summary

sock, have_shims = sys.argv[1], sys.argv[2] == "1"

def check(cond, what):
    (ok if cond else not_ok)(what)

class Chan:
    def __init__(self, timeout):
        end = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(sock)
                break
            except OSError:
                self.s.close()
                if time.time() > end:
                    raise
                time.sleep(0.1)
        self.buf, self.id, self.kept = b"", 0, []

    def read(self, timeout):
        end = time.time() + timeout
        while b"\n" not in self.buf:
            left = end - time.time()
            if left <= 0:
                raise TimeoutError
            self.s.settimeout(left)
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, obj):
        self.s.sendall((json.dumps(obj) + "\n").encode())

    def request(self, obj, timeout=10):
        self.id += 1
        obj = dict(obj, id=self.id)
        t0 = time.perf_counter()
        self.send(obj)
        return self.wait(self.id, timeout), (time.perf_counter() - t0) * 1000

    def wait(self, rid, timeout=10):
        for m in self.kept:
            if m.get("id") == rid:
                self.kept.remove(m)
                return m
        end = time.time() + timeout
        while True:
            m = self.read(max(0.01, end - time.time()))
            if m.get("t") == "reply" and m.get("id") == rid:
                return m
            if m.get("t") == "reply":
                self.kept.append(m)

    def hello(self, timeout):
        while True:
            m = self.read(timeout)
            if m.get("t") == "hello":
                return m

def main():
    global c
    t0 = time.time()
    c = Chan(30)
    h = c.hello(60)
    print("hello %.1f s after the domain started" % (time.time() - t0))
    check(h["v"] == 1 and h["exercise"] == "itex" and h["team"] == 3
          and h["host"] == "web", "hello carries the kernel command line identity")
    check({"name": "eth0", "mac": "52:54:00:da:17:01"} in h["ifaces"],
          "hello lists eth0 by MAC")

    r, _ = c.request({"t": "hello?"})
    check(r["ok"] and c.hello(5)["t"] == "hello", "hello? answers and re-sends hello")
    rt = [c.request({"t": "health"})[1] for _ in range(100)]
    r, _ = c.request({"t": "health"})
    print("health round trip: median %.2f ms, min %.2f, max %.2f (100 requests)"
          % (statistics.median(rt), min(rt), max(rt)))
    check(r["ok"] and r["uptime_s"] > 0 and r["mem_total_kb"] > 0, "health")

    c.send({"no": "type"})
    r = c.read(5)
    check(r["t"] == "reply" and r["id"] is None and not r["ok"], "bad input answered with id null")
    r, _ = c.request({"t": "format-disk"})
    check(r["error"] == "unknown request", "unknown request refused")

    r, ms = c.request({"t": "exec", "argv": ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]})
    print("exec round trip %.1f ms" % ms)
    check(r["exit"] == 3 and r["stdout"] == "out\n" and r["stderr"] == "err\n", "exec status and output")
    r, ms = c.request({"t": "exec", "argv": ["sleep", "30"], "timeout_ms": 500})
    check(r["timed_out"] and r["signal"] == 9 and ms < 3000, "exec timeout kills (%.0f ms)" % ms)
    r, _ = c.request({"t": "probe", "addr": "127.0.0.1", "port": 22})
    check(not r["ok"] and "198.18.0.0/15" in r["error"], "probe of 127.0.0.1 refused")

    cfg = {"t": "config", "exercise": "itex", "team": 3, "host": "web", "role": "server",
           "hostname": "web3",
           "ifaces": [{"mac": "52:54:00:DA:17:01", "addr": "198.18.3.10", "prefix": 24}],
           "gateway": "198.18.3.1", "dns": ["198.18.3.53"],
           "files": [{"path": "/etc/motd", "content": "team 3\n", "mode": "0600"}],
           "env": {"CYR_SERVICES": "http", "CYR_DOMAIN": "t3.example"}}
    if have_shims:
        cfg["accounts"] = [{"name": "alice", "password": "pw3", "groups": ["users", "staff"]}]
    r, ms = c.request(cfg, 30)
    print("config applied in %.0f ms" % ms)
    check(r["ok"], "config ok: " + str(r.get("error")))
    r2, _ = c.request(cfg, 30)
    check(r2["ok"] and "start-services: already started" in r2["actions"]
          and not any(a.startswith(("adduser", "addgroup", "addr del"))
                      for a in r2["actions"]),
          "the same config again changes nothing new")
    r, _ = c.request({"t": "health"})
    eth0 = [i for i in r["ifaces"] if i["name"] == "eth0"][0]
    check(eth0["addrs"] == ["198.18.3.10/24"] and eth0["up"] and r["services_started"],
          "health shows the address and the services")
    time.sleep(0.5)
    r, _ = c.request({"t": "exec", "argv": ["/bin/sh", "-c",
                      "hostname; ip route | grep default; cat /etc/resolv.conf; stat -c %a /etc/motd; "
                      ". /etc/cyrange/host.env; echo \"$CYR_IF_eth0_ADDR $CYR_TEAM\"; cat /run/services.txt; "
                      "grep -c '^alice:' /etc/passwd; grep '^staff:' /etc/group"]})
    out = r["stdout"]
    check(out.startswith("web3\n") and "default via 198.18.3.1 dev eth0" in out, "hostname and route set")
    check("search t3.example\nnameserver 198.18.3.53" in out and "\n600\n" in out, "resolv.conf and file mode")
    check("198.18.3.10/24 3\n" in out and out.count("ran services=http") == 1, "host.env written, start-services ran once")
    if have_shims:
        check("\n1\nstaff:" in out and "alice" in out.split("staff:")[1], "account and groups created")

    # Probes, all at once, with a health request among them.
    port_open, port_closed = 8080, 81
    t0 = time.perf_counter()
    ids = {}
    for addr, port, tmo in [("198.18.3.10", port_open, 1000), ("198.18.3.10", port_closed, 1000),
                            ("198.18.3.99", 80, 800), ("198.18.3.98", 80, 800), ("198.18.3.97", 80, 800)]:
        c.id += 1
        ids[c.id] = (addr, port)
        c.send({"t": "probe", "id": c.id, "addr": addr, "port": port, "timeout_ms": tmo})
    c.id += 1
    hid = c.id
    c.send({"t": "health", "id": hid})
    order = []
    res = {}
    while len(order) < 6:
        m = c.read(5)
        if m.get("t") != "reply":
            continue
        order.append(m["id"])
        res[m["id"]] = (m, (time.perf_counter() - t0) * 1000)
    print("probe replies (id: ms):", ", ".join("%d: %.0f" % (i, res[i][1]) for i in order))
    first = min(ids)
    check(res[first][0]["reachable"] is True, "probe reachable (own httpd)")
    check(res[first + 1][0]["error"] == "ECONNREFUSED", "probe refused port")
    check(all(res[i][0]["error"] == "timeout" for i in range(first + 2, first + 5)), "probe timeouts")
    check(res[hid][1] < 500 and res[hid][1] < min(res[i][1] for i in range(first + 2, first + 5)),
          "health answered while probes run")
    check(max(res[i][1] for i in range(first + 2, first + 5)) < 2000, "the three timeouts ran concurrently")

    # Host goes away with an exec running and comes back 0.5 s later (the
    # orchestrator retries every 250 ms): the guest sees the hangup, the new
    # connection gets a hello and never the old connection's answer.
    c.id += 1
    stale = c.id
    c.send({"t": "exec", "id": stale, "argv": ["sleep", "1"]})
    time.sleep(0.2)
    c.s.close()
    time.sleep(0.5)
    t0 = time.perf_counter()
    c = Chan(5)
    c.id = 5000
    h = c.hello(5)
    print("hello %.0f ms after the host reconnected" % ((time.perf_counter() - t0) * 1000))
    check(h["host"] == "web", "fresh hello after reconnect")
    time.sleep(1.0)
    r, _ = c.request({"t": "health"})
    check(r["ok"] and all(m.get("id") != stale for m in c.kept),
          "no stale reply after reconnect")

    # A reconnect faster than the guest can notice (virtio reports the host
    # state, not its changes): the orchestrator asks with hello?.
    c.s.close()
    c = Chan(5)
    c.id = 6000
    r, _ = c.request({"t": "hello?"})
    check(r["ok"] and c.hello(5)["host"] == "web", "hello? after a quick reconnect")

try:
    main()
except Exception as e:
    check(False, "exception: %r" % (e,))
sys.exit(summary())
EOF
set +e
python3 "$work/check.py" "$state/agent.sock" "$have_shims"
rc=$?
set -e
if [ $rc -ne 0 ]; then
    echo "--- guest console (last lines)"
    tail -20 "$state/console.log" 2>/dev/null || true
fi
exit $rc
