#!/usr/bin/env python3
"""agentctl.py: talk to a cyrange agent over its libvirt channel socket
(agents/PROTOCOL.md: one JSON object per line).  For the image boot tests.

  agentctl.py SOCK hello [TIMEOUT]      wait for the agent's hello, print it
  agentctl.py SOCK exec CMD [TIMEOUT]   run CMD with /bin/sh -c, print stdout;
                                        exit status = the command's
  agentctl.py SOCK request JSON [TIMEOUT]  send one request (id added), print
                                        the reply
"""
import json
import socket
import sys
import time


class Agent:
    def __init__(self, path, timeout):
        self.deadline = time.monotonic() + timeout
        self.sock = None
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                self.sock = s
                break
            except OSError:
                if time.monotonic() > self.deadline:
                    raise
                time.sleep(0.2)
        self.buf = b""
        self.next_id = 1
        self.hello = None

    def read(self):
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the agent")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("channel closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        if msg.get("t") == "hello":
            self.hello = msg
        return msg

    def wait_hello(self):
        # Ask too: an agent that started before we connected greets only
        # on reconnect or when asked.
        self.send({"t": "hello?"})
        while self.hello is None:
            self.read()
        return self.hello

    def send(self, obj):
        obj = dict(obj)
        obj["id"] = self.next_id
        self.next_id += 1
        self.sock.sendall(json.dumps(obj).encode() + b"\n")
        return obj["id"]

    def request(self, obj):
        rid = self.send(obj)
        while True:
            msg = self.read()
            if msg.get("t") == "reply" and msg.get("id") == rid:
                return msg


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    path, cmd = argv[1], argv[2]
    if cmd == "hello":
        timeout = float(argv[3]) if len(argv) > 3 else 60
        a = Agent(path, timeout)
        print(json.dumps(a.wait_hello()))
        return 0
    if cmd == "exec":
        timeout = float(argv[4]) if len(argv) > 4 else 60
        a = Agent(path, timeout)
        r = a.request({"t": "exec", "argv": ["/bin/sh", "-c", argv[3]],
                       "timeout_ms": int(timeout * 1000) - 1000})
        if not r.get("ok"):
            sys.stderr.write("agent: %s\n" % r.get("error"))
            return 125
        sys.stdout.write(r.get("stdout", ""))
        sys.stderr.write(r.get("stderr", ""))
        return r.get("exit", 126) if isinstance(r.get("exit"), int) else 126
    if cmd == "request":
        timeout = float(argv[4]) if len(argv) > 4 else 60
        a = Agent(path, timeout)
        r = a.request(json.loads(argv[3]))
        print(json.dumps(r))
        return 0 if r.get("ok") else 1
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
