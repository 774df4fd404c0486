#!/usr/bin/env python3
"""One round of a mixed client workload against paf, for the leak test (tests/netns/leak.rs).

usage: leak_mix.py HOST CA_PEM SCALE

HOST is paf's address; port 80 serves HTTP (routes /bench: a static body, /files/big.bin: a
4 MB file), port 443 HTTPS with a certificate for paf.test signed by CA_PEM. SCALE multiplies
the number of clients of each kind. The server's head, body and write timeouts and its TLS
handshake timeout are expected to be about 1 s.

Kinds of clients (each runs on its own connection, several kinds at once):
  keepalive   5 requests on one connection, then close        -> 5 x 200
  short       one request with Connection: close              -> 200, then EOF
  malformed   garbage                                         -> 400, then EOF
  smuggle     Content-Length with Transfer-Encoding           -> 400, then EOF
  rst_head    half a head, then a reset (SO_LINGER 0)         -> (nothing to check)
  rst_body    a head announcing 100000 bytes, 3000 sent, then a reset
  rst_resp    GET the big file, read 64 KiB, then a reset
  whole_file  GET the big file, read all 4 MB                 -> 200, length checked
  head_to     half a head, then wait                          -> 408, then EOF
  write_to    GET the big file and never read                 -> reset by the server
  tls_keep    HTTPS, 3 requests on one connection             -> 3 x 200
  tls_rst     HTTPS GET of the big file, 64 KiB read, then a reset
  tls_plain   plain HTTP sent to the TLS port                 -> closed by the server
  tls_hello   the start of a ClientHello, then a reset
  tls_idle    connect to the TLS port, send nothing           -> closed at the handshake timeout
Every wait is bounded (socket timeouts of at most 15 s). Prints `KIND ok/total` per kind, then
`ok N` when every client behaved as expected, and exits 1 otherwise.
"""
import socket
import ssl
import struct
import sys
import threading

HOST, CA, SCALE = sys.argv[1], sys.argv[2], int(sys.argv[3])
BIG = 4_000_000
LIMIT = 15.0

results = {}
lock = threading.Lock()


def record(kind, ok, why=""):
    with lock:
        good, total, whys = results.get(kind, (0, 0, []))
        if not ok and len(whys) < 3:
            whys.append(why)
        results[kind] = (good + (1 if ok else 0), total + 1, whys)


def connect(port):
    s = socket.create_connection((HOST, port), timeout=LIMIT)
    s.settimeout(LIMIT)
    return s


def reset(s):
    """Close with a RST instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def get(path, close=False):
    c = b"Connection: close\r\n" if close else b""
    return b"GET " + path + b" HTTP/1.1\r\nHost: paf.test\r\n" + c + b"\r\n"


def read_response(s, buf):
    """Reads one response framed by Content-Length; returns (status, body length, rest)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before a response head")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed inside a body")
        rest += d
    return status, length, rest[length:]


def read_to_end(s):
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return data, "eof"
            data += d
    except ConnectionResetError:
        return data, "reset"


def guarded(kind, fn):
    try:
        ok, why = fn()
    except Exception as e:  # every failure is a result, never a crash of the round
        ok, why = False, repr(e)
    record(kind, ok, why)


def keepalive():
    s = connect(80)
    s.sendall(get(b"/bench") * 4 + get(b"/bench", close=True))
    buf, statuses = b"", []
    for _ in range(5):
        status, _, buf = read_response(s, buf)
        statuses.append(status)
    rest, how = read_to_end(s)
    s.close()
    return statuses == [200] * 5 and how == "eof", f"{statuses} {how}"


def expect_status(payload, want, port=80):
    def run():
        s = connect(port)
        s.sendall(payload)
        data, how = read_to_end(s)
        s.close()
        return data[9:12] == str(want).encode() and how == "eof", f"{data[:40]!r} {how}"
    return run


def rst_after_send(payload):
    def run():
        s = connect(80)
        s.sendall(payload)
        threading.Event().wait(0.05)
        reset(s)
        return True, ""
    return run


def rst_resp():
    s = connect(80)
    s.sendall(get(b"/files/big.bin"))
    got = 0
    while got < 65536:
        d = s.recv(65536)
        if not d:
            break
        got += len(d)
    reset(s)
    return got >= 65536, f"{got} bytes"


def whole_file():
    s = connect(80)
    s.sendall(get(b"/files/big.bin", close=True))
    status, length, _ = read_response(s, b"")
    s.close()
    return status == 200 and length == BIG, f"{status} {length}"


def write_to():
    s = connect(80)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(get(b"/files/big.bin"))
    threading.Event().wait(3.0)  # the server's write timeout (1 s) passes unread
    _, how = read_to_end(s)
    s.close()
    return how == "reset", how


def tls_context():
    ctx = ssl.create_default_context(cafile=CA)
    return ctx


def tls_keep():
    raw = connect(443)
    s = tls_context().wrap_socket(raw, server_hostname="paf.test")
    s.sendall(get(b"/bench") * 2 + get(b"/bench", close=True))
    buf, statuses = b"", []
    for _ in range(3):
        status, _, buf = read_response(s, buf)
        statuses.append(status)
    s.close()
    return statuses == [200] * 3, f"{statuses}"


def tls_rst():
    raw = connect(443)
    s = tls_context().wrap_socket(raw, server_hostname="paf.test")
    s.sendall(get(b"/files/big.bin"))
    got = 0
    while got < 65536:
        d = s.recv(65536)
        if not d:
            break
        got += len(d)
    reset(s)  # the TLS socket owns the descriptor now
    return got >= 65536, f"{got} bytes"


def tls_closed(payload, then_reset=False):
    def run():
        s = connect(443)
        if payload:
            s.sendall(payload)
        if then_reset:
            threading.Event().wait(0.05)
            reset(s)
            return True, ""
        _, how = read_to_end(s)
        s.close()
        return how in ("eof", "reset"), how
    return run


SMUGGLE = (b"POST /bench HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
HELLO = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + bytes(20)
KINDS = [
    ("keepalive", 20, keepalive),
    ("short", 20, expect_status(get(b"/bench", close=True), 200)),
    ("malformed", 5, expect_status(b"\x00\x01 NOT HTTP\r\n\r\n", 400)),
    ("smuggle", 5, expect_status(SMUGGLE, 400)),
    ("rst_head", 5, rst_after_send(b"GET /bench HTTP/1.1\r\nHo")),
    ("rst_body", 5, rst_after_send(
        b"POST /bench HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"z" * 3000)),
    ("rst_resp", 5, rst_resp),
    ("whole_file", 3, whole_file),
    ("head_to", 5, expect_status(b"GET /bench HTTP/1.1\r\nHo", 408)),
    ("write_to", 3, write_to),
    ("tls_keep", 10, tls_keep),
    ("tls_rst", 3, tls_rst),
    ("tls_plain", 3, tls_closed(get(b"/bench", close=True))),
    ("tls_hello", 3, tls_closed(HELLO, then_reset=True)),
    ("tls_idle", 3, tls_closed(b"")),
]

threads = []
for kind, n, fn in KINDS:
    for _ in range(n * SCALE):
        t = threading.Thread(target=guarded, args=(kind, fn))
        t.start()
        threads.append(t)
        if len(threads) % 20 == 0:  # at most about 20 clients starting at once
            threading.Event().wait(0.02)
for t in threads:
    t.join(LIMIT * 3)

failed = False
for kind, _, _ in KINDS:
    good, total, whys = results.get(kind, (0, 0, []))
    print(f"{kind} {good}/{total}" + (f" {whys}" if whys else ""))
    failed |= good != total or total == 0
if failed:
    sys.exit(1)
print(f"ok {len(threads)}")
