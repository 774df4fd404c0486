#!/usr/bin/env python3
"""Hold many idle HTTP/1.1 keep-alive connections open to one server (scripts/bench).

    idle_conns.py HOST PORT COUNT [--path /bench] [--concurrency 64] [--setup-timeout 60]
                  [--hold-max 600]

Opens COUNT connections, at most --concurrency of them being set up at a time (a userspace
stack with a fixed pool of listening sockets refuses bursts; refused connects are retried, up to
5 times each, and counted). On each connection it sends one `GET PATH` and reads the whole
response, so every held connection is a served keep-alive connection, then leaves it idle.

Prints, flushed, one line when setup ends:
    ready ok=N failed=N retries=N seconds=S
then holds the connections until SIGTERM/SIGINT (or --hold-max seconds), and prints:
    done alive=N closed=N
where `closed` counts held connections the server closed (EOF or reset) while they were held.
Exit status 0 unless the arguments are wrong. Only the standard library is used.
"""

import argparse
import errno
import resource
import selectors
import signal
import socket
import sys
import time

MAX_TRIES = 5


class Conn:
    __slots__ = ("sock", "state", "buf", "tries")

    def __init__(self, tries):
        self.sock = None
        self.state = "connecting"
        self.buf = b""
        self.tries = tries


def response_complete(buf):
    """True once `buf` holds a complete response with a Content-Length body."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(buf) >= end + 4 + length


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need + 64)) if hard != resource.RLIM_INFINITY else need + 64
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need + 16:
        sys.exit(f"idle_conns: RLIMIT_NOFILE hard limit {hard} is too low for {need} connections")


def setup(args):
    """Opens the connections; returns (held sockets, failed, retries)."""
    request = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    held, failed, retries = [], 0, 0
    todo = [Conn(0) for _ in range(args.count)]
    todo.reverse()
    active = 0
    deadline = time.monotonic() + args.setup_timeout

    def fail(c):
        nonlocal failed, retries, active
        sel.unregister(c.sock)
        c.sock.close()
        active -= 1
        if c.tries + 1 < MAX_TRIES:
            retries += 1
            todo.append(Conn(c.tries + 1))
        else:
            failed += 1

    # Bounded by the deadline; every connection ends held or failed after MAX_TRIES.
    while (todo or active) and time.monotonic() < deadline:
        while todo and active < args.concurrency:
            c = todo.pop()
            c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.sock.setblocking(False)
            err = c.sock.connect_ex((args.host, args.port))
            sel.register(c.sock, selectors.EVENT_WRITE, c)
            active += 1
            if err not in (0, errno.EINPROGRESS):
                fail(c)
        for key, _ in sel.select(timeout=0.2):
            c = key.data
            if c.state == "connecting":
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    fail(c)
                    continue
                try:
                    c.sock.send(request)
                except OSError:
                    fail(c)
                    continue
                c.state = "reading"
                sel.modify(c.sock, selectors.EVENT_READ, c)
            else:
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    fail(c)
                    continue
                c.buf += data
                if response_complete(c.buf):
                    sel.unregister(c.sock)
                    active -= 1
                    held.append(c.sock)
                    c.buf = b""
    # Whatever is still being set up at the deadline has failed.
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    failed += len(todo)
    sel.close()
    return held, failed, retries


def count_alive(held):
    alive = closed = 0
    for s in held:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            # Unexpected bytes still mean the connection is open.
            alive, closed = (alive + 1, closed) if data else (alive, closed + 1)
        except BlockingIOError:
            alive += 1
        except OSError:
            closed += 1
    return alive, closed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--path", default="/bench")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--setup-timeout", type=float, default=60.0)
    ap.add_argument("--hold-max", type=float, default=600.0)
    args = ap.parse_args()
    raise_nofile(args.count)

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))

    t0 = time.monotonic()
    held, failed, retries = setup(args)
    print(f"ready ok={len(held)} failed={failed} retries={retries} "
          f"seconds={time.monotonic() - t0:.2f}", flush=True)
    end = time.monotonic() + args.hold_max
    while not stop and time.monotonic() < end:
        time.sleep(0.05)
    alive, closed = count_alive(held)
    print(f"done alive={alive} closed={closed}", flush=True)
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
