#!/usr/bin/env python3
"""TLS garbage clients against an https port: each worker connects, sends some bytes that are not a
usable ClientHello, then stays silent and waits for the server to close the connection (EOF or
reset). Workers repeat until DURATION_S has passed (the cycle in progress is finished), so the
pressure lasts as long as the test needs it. Deterministic random bytes (seeded).

Worker kinds (the KINDS argument is a comma-separated list, one worker each):
  hdr48   the bytes 16 03 03 48 00: a handshake record header announcing 18,432 bytes
  hdr40   the bytes 16 03 03 40 00: a handshake record header announcing 16,384 bytes
  randN   N random bytes (N in 1..4096), a new random string each cycle
  none    nothing at all: connect and wait
  hello1  the first 5 bytes of a ClientHello record header (16 03 01 00 c8) and 10 of its bytes

For every finished cycle one line is printed:
  KIND close_ms=MS how=eof|reset|timeout got=HEX port=LOCAL_PORT
where close_ms is the time from connect to the server's close, `got` the first bytes the server
sent (an alert, if any) and `timeout` means the server did not close within LIMIT_S. Between cycles a
worker pauses PAUSE_MS (so instant rejections do not become a connection flood).

usage: tls_garbage.py HOST PORT DURATION_S KINDS [LIMIT_S] [PAUSE_MS]
"""
import random
import socket
import sys
import threading
import time

HDR48 = bytes([0x16, 0x03, 0x03, 0x48, 0x00])
HDR40 = bytes([0x16, 0x03, 0x03, 0x40, 0x00])
HELLO1 = bytes([0x16, 0x03, 0x01, 0x00, 0xC8, 0x01, 0x00, 0x00, 0xC4, 0x03, 0x03]) + bytes(4)


def payload(kind, rng):
    if kind == "hdr48":
        return HDR48
    if kind == "hdr40":
        return HDR40
    if kind == "none":
        return b""
    if kind == "hello1":
        return HELLO1
    if kind.startswith("rand"):
        n = int(kind[4:] or "64")
        return bytes(rng.getrandbits(8) for _ in range(n))
    raise SystemExit(f"unknown kind {kind!r}")


def cycle(host, port, data, limit):
    """One connection: returns (seconds to the server's close, how, bytes received, local port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
        start = time.monotonic()
        how, got = wait_close(s, data, start, limit)
        return (time.monotonic() - start, how, got, s.getsockname()[1])
    finally:
        s.close()


def wait_close(s, data, start, limit):
    """Sends `data`, then reads until the server closes or `limit` seconds have passed."""
    got = b""
    try:
        s.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        return ("reset", got)
    while True:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            return ("timeout", got)
        s.settimeout(left)
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            return ("timeout", got)
        except ConnectionResetError:
            return ("reset", got)
        if not chunk:
            return ("eof", got)
        got += chunk


def main():
    host, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    kinds = sys.argv[4].split(",")
    limit = float(sys.argv[5]) if len(sys.argv) > 5 else 15.0
    pause = float(sys.argv[6]) / 1000 if len(sys.argv) > 6 else 0.1
    lock = threading.Lock()
    end = time.monotonic() + duration
    failed = []

    def worker(index, kind):
        rng = random.Random(1000 + index)
        while True:
            try:
                ms, how, got, local = cycle(host, port, payload(kind, rng), limit)
            except OSError as e:
                with lock:
                    failed.append(f"{kind}: {e}")
                    print(f"{kind} error={e}", flush=True)
                return
            with lock:
                print(
                    f"{kind} close_ms={ms * 1000:.0f} how={how} got={got[:16].hex()} port={local}",
                    flush=True,
                )
            if time.monotonic() >= end:
                return
            time.sleep(pause)

    threads = [threading.Thread(target=worker, args=(i, k)) for i, k in enumerate(kinds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
