#!/usr/bin/env python3
"""Hostile TLS clients, one per run, each bounded by LIMIT_S. The ClientHello is a real one
(Python's ssl module on a memory BIO, SNI paf.test), so the server sees a well-formed start.

  cut-hello HOST PORT LIMIT_S
      Sends the first half of the ClientHello, then stays silent until the server closes.
      Prints: cut-hello sent=N close_ms=MS how=eof|reset|timeout got=HEX
  hello-close HOST PORT LIMIT_S
      Sends the whole ClientHello, then closes at once (FIN).
      Prints: hello-close sent=N
  slow-read HOST PORT LIMIT_S CAFILE PATH
      Completes the handshake (receive buffer 4 KiB), sends `GET PATH`, then never reads. Waits
      for a reset or FIN only (epoll, never EPOLLIN). Times come from TCP_INFO.
      Prints: slow-read version=V stall_ms=S close_ms=MS how=reset|fin|timeout
      (S: connect to the last data received; MS: that last data to the server's reset or FIN)

Exit status 0 when the client did its part (whatever the server did), 1 otherwise.

usage: tls_hostile.py MODE HOST PORT LIMIT_S [CAFILE PATH]
"""
import select
import socket
import ssl
import struct
import sys
import time

TCP_INFO = getattr(socket, "TCP_INFO", 11)
LAST_DATA_RECV = 52  # offset of tcpi_last_data_recv (ms) in struct tcp_info


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="paf.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[0] == 0x16, hello[:8].hex()
    return hello


def connect(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((host, port))
    return s


def wait_close(s, start, limit):
    """Reads until the server closes or `limit` s after `start`: (ms, how, first bytes)."""
    got = b""
    while True:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            return (time.monotonic() - start) * 1000, "timeout", got
        s.settimeout(left)
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return (time.monotonic() - start) * 1000, "reset", got
        if not chunk:
            return (time.monotonic() - start) * 1000, "eof", got
        got += chunk


def cut_hello(host, port, limit):
    hello = client_hello()
    start = time.monotonic()  # before the SYN: the server's deadline starts later
    s = connect(host, port)
    half = hello[: len(hello) // 2]
    s.sendall(half)
    ms, how, got = wait_close(s, start, limit)
    print(f"cut-hello sent={len(half)} close_ms={ms:.0f} how={how} got={got[:16].hex()}")
    s.close()


def hello_close(host, port, limit):
    hello = client_hello()
    s = connect(host, port)
    s.sendall(hello)
    s.close()
    print(f"hello-close sent={len(hello)}")


def slow_read(host, port, limit, cafile, path):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(5)
    start = time.monotonic()
    raw.connect((host, port))
    ctx = ssl.create_default_context(cafile=cafile)
    s = ctx.wrap_socket(raw, server_hostname="paf.test")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: paf.test\r\n\r\n".encode())
    ep = select.epoll()
    ep.register(s.fileno(), select.EPOLLRDHUP)  # ERR and HUP are always reported
    how = "timeout"
    deadline = start + limit
    while how == "timeout" and time.monotonic() < deadline:
        for _, mask in ep.poll(max(0.0, deadline - time.monotonic())):
            how = "reset" if mask & (select.EPOLLERR | select.EPOLLHUP) else "fin"
    info = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, LAST_DATA_RECV + 4)
    since = struct.unpack_from("I", info, LAST_DATA_RECV)[0]
    total = (time.monotonic() - start) * 1000
    print(
        f"slow-read version={s.version()} stall_ms={total - since:.0f} close_ms={since:.0f} "
        f"how={how}"
    )
    raw.close()


def main():
    mode, host, port, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    if mode == "cut-hello":
        cut_hello(host, port, limit)
    elif mode == "hello-close":
        hello_close(host, port, limit)
    elif mode == "slow-read":
        slow_read(host, port, limit, sys.argv[5], sys.argv[6])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
