"""A small client of cyrange's HTTP/JSON API for the integration tests:
sessions with the cookie and the CSRF header, JSON requests, and a minimal
RFC 6455 WebSocket client (masked frames), standard library only."""
import base64
import http.client
import json
import os
import socket
import struct


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body))
        self.status = status
        self.body = body


class Session:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, raw=False):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = dict(headers or {})
        if self.cookie:
            h["Cookie"] = self.cookie
        if self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        set_cookie = r.getheader("Set-Cookie")
        if set_cookie and set_cookie.startswith("cyrange_session="):
            self.cookie = set_cookie.split(";")[0]
        conn.close()
        if raw:
            return r.status, payload, r
        text = payload.decode() if payload else ""
        doc = json.loads(text) if text else None
        return r.status, doc

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        status, doc = self.request(method, path, body)
        if status not in expect:
            raise ApiError(status, doc)
        return doc

    def login(self, name, password):
        doc = self.call("POST", "/api/login", {"name": name, "password": password})
        self.csrf = doc["csrf"]
        return doc


class WebSocket:
    """Client side of RFC 6455: masked frames out, unmasked in."""

    def __init__(self, host, port, path, cookie=None, timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if cookie:
            lines.append("Cookie: " + cookie)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ApiError(0, "connection closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            raise ApiError(status, head.decode(errors="replace"))

    def send(self, data, opcode=None):
        if isinstance(data, str):
            data, op = data.encode(), 1
        else:
            op = 2
        op = opcode or op
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | op, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(hdr + mask + body)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ApiError(0, "connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """(opcode, payload) of the next frame; pings are answered."""
        while True:
            b0, b1 = self._need(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._need(8))[0]
            payload = self._need(n)
            if op == 9:
                self.send(payload, opcode=10)
                continue
            return op, payload

    def close(self):
        try:
            self.send(struct.pack("!H", 1000), opcode=8)
        except OSError:
            pass
        self.sock.close()
