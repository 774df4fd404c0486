#!/usr/bin/env python3
"""An HTTP/1.1 upstream that records every byte it receives: each accepted connection gets its
own file DIR/conn-NNNN.raw, and every received chunk is appended to it (unbuffered) before
anything is parsed, so the file holds exactly what came over the wire even when it does not
parse. Each request (framed by Content-Length or chunked) is answered
`200 OK` with the fixed body BODY and `Content-Length`; the connection is kept open unless the
request says `Connection: close`. On anything it cannot frame it stops answering and closes.

Reads are bounded (60 s of silence closes a connection), so a stuck peer cannot hold a thread.

With `proxy` as a fifth argument, each connection must start with a PROXY protocol header
(version 1 or 2), which is recorded like the rest and skipped before the first request; a
connection without one is closed.

usage: recording_upstream.py HOST PORT DIR BODY [proxy]
"""
import itertools
import os
import socket
import socketserver
import sys
import threading

COUNTER = itertools.count()
LOCK = threading.Lock()


class Conn(socketserver.BaseRequestHandler):
    def setup(self):
        with LOCK:
            n = next(COUNTER)
        self.sink = open(os.path.join(self.server.dir, "conn-%04d.raw" % n), "ab", buffering=0)
        self.buf = b""
        self.request.settimeout(60)

    def finish(self):
        self.sink.close()

    def more(self):
        """Reads one chunk, records it; False on EOF."""
        try:
            chunk = self.request.recv(65536)
        except OSError:
            return False
        if not chunk:
            return False
        self.sink.write(chunk)
        self.buf += chunk
        return True

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536 or not self.more():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def take(self, n):
        while len(self.buf) < n:
            if not self.more():
                return None
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def request_body(self, fields):
        te = fields.get(b"transfer-encoding", b"").lower()
        if te:
            if te != b"chunked":
                return None
            while True:
                size = self.line()
                if size is None:
                    return None
                try:
                    n = int(size.split(b";")[0], 16)
                except ValueError:
                    return None
                if n == 0:
                    while True:
                        trailer = self.line()
                        if trailer is None:
                            return None
                        if trailer == b"":
                            return True
                if self.take(n) is None or self.take(2) != b"\r\n":
                    return None
        length = fields.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return None
            return self.take(int(length)) is not None
        return True

    def proxy_header(self):
        """Skips one PROXY header (v1 line or v2 block); False when there is none."""
        first = self.take(12)
        if first is None:
            return False
        if first == b"\r\n\r\n\x00\r\nQUIT\n":
            rest = self.take(4)
            return rest is not None and self.take(int.from_bytes(rest[2:4], "big")) is not None
        if not first.startswith(b"PROXY "):
            return False
        self.buf = first + self.buf
        line = self.line()
        return line is not None and len(line) <= 105

    def handle(self):
        body = self.server.body
        if self.server.proxy and not self.proxy_header():
            return
        while True:
            start = self.line()
            if start is None or start.count(b" ") != 2:
                return
            fields = {}
            while True:
                field = self.line()
                if field is None:
                    return
                if field == b"":
                    break
                name, sep, value = field.partition(b":")
                if not sep:
                    return
                fields[name.strip().lower()] = value.strip()
            if not self.request_body(fields):
                return
            close = b"close" in fields.get(b"connection", b"").lower()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % len(body)
            if close:
                head += b"Connection: close\r\n"
            try:
                self.request.sendall(head + b"\r\n" + body)
            except OSError:
                return
            if close:
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    host, port, directory, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    os.makedirs(directory, exist_ok=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    Server.address_family = family
    server = Server((host, port), Conn)
    server.dir = directory
    server.body = body.encode()
    server.proxy = sys.argv[5:] == ["proxy"]
    server.serve_forever()


if __name__ == "__main__":
    main()
