#!/usr/bin/python3
"""HTTP/2 protocol probes, h2spec-style, for tests/netns/h2.rs.

Usage: h2_probes.py HOST PORT [CA_FILE]   (with CA_FILE: TLS with ALPN h2, else h2c)

Each probe opens its own connection, sends the client preface and SETTINGS, then something
RFC 9113 says a server must answer in a given way, and prints one line:

    NAME goaway CODE | NAME rst CODE | NAME ok | NAME closed | NAME none

`ok` is a probe's expected non-error answer (a PING ACK with the same payload, a response);
`none` means nothing came within the timeout. Frames are written by hand (the point is to send
what a conforming client never would); header blocks are encoded with Debian's `hpack`
(python3-h2), which is why this runs under /usr/bin/python3.
"""

import socket
import ssl
import struct
import sys

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
CODES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def headers(stream, method="GET", path="/bench", end_stream=True):
    block = hpack.Encoder().encode(
        [(":method", method), (":scheme", SCHEME), (":authority", "paf.test"), (":path", path)]
    )
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream, block)


class Conn:
    def __init__(self, host, port, ca):
        raw = socket.create_connection((host, port), timeout=3)
        if ca:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.set_alpn_protocols(["h2"])
            self.s = ctx.wrap_socket(raw, server_hostname="paf.test")
            assert self.s.selected_alpn_protocol() == "h2", self.s.selected_alpn_protocol()
        else:
            self.s = raw
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def start(self, preface=PREFACE):
        self.send(preface + frame(SETTINGS, 0, 0))

    def frames(self):
        """Yields (type, flags, stream, payload) until the peer closes or goes quiet."""
        while True:
            while len(self.buf) >= 9:
                n = struct.unpack(">I", b"\0" + self.buf[:3])[0]
                if len(self.buf) < 9 + n:
                    break
                kind, flags = self.buf[3], self.buf[4]
                stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
                yield kind, flags, stream, payload
            try:
                data = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError, ssl.SSLError):
                return
            if not data:
                yield None
                return
            self.buf += data

    def outcome(self, want_ping=None, want_response=None):
        """The first error (GOAWAY or RST_STREAM) or the expected answer."""
        for f in self.frames():
            if f is None:
                return "closed"
            kind, flags, stream, payload = f
            if kind == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
            elif kind == GOAWAY:
                return "goaway " + CODES.get(struct.unpack(">I", payload[4:8])[0], "?")
            elif kind == RST_STREAM:
                return "rst " + CODES.get(struct.unpack(">I", payload[:4])[0], "?")
            elif kind == PING and flags & ACK and payload == want_ping:
                return "ok"
            elif kind == HEADERS and stream == want_response:
                return "ok"
        return "none"


def probe(name, host, port, ca, act, **want):
    c = Conn(host, port, ca)
    try:
        act(c)
        result = c.outcome(**want)
    except (BrokenPipeError, ConnectionResetError):
        result = "closed"
    print(name, result, flush=True)
    c.s.close()


def answered_then_reset(c):
    """A complete exchange on stream 1, then RST_STREAM on it (closed: must be ignored),
    then a PING that must still be answered."""
    c.start()
    c.send(headers(1))
    for f in c.frames():
        if f is None or (f[0] == DATA and f[1] & END_STREAM and f[2] == 1):
            break
        if f[0] == SETTINGS and not f[1] & ACK:
            c.send(frame(SETTINGS, ACK, 0))
    c.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
    c.send(frame(PING, 0, 0, b"stillok!"))


def main():
    global SCHEME
    host, port = sys.argv[1], int(sys.argv[2])
    ca = sys.argv[3] if len(sys.argv) > 3 else None
    SCHEME = "https" if ca else "http"
    probes = [
        ("ping", lambda c: (c.start(), c.send(frame(PING, 0, 0, b"12345678"))), {"want_ping": b"12345678"}),
        ("get", lambda c: (c.start(), c.send(headers(1))), {"want_response": 1}),
        ("data_on_stream_0", lambda c: (c.start(), c.send(frame(DATA, 0, 0, b"x"))), {}),
        ("settings_on_stream_1", lambda c: (c.start(), c.send(frame(SETTINGS, 0, 1))), {}),
        ("ping_on_stream_1", lambda c: (c.start(), c.send(frame(PING, 0, 1, b"12345678"))), {}),
        ("ping_bad_length", lambda c: (c.start(), c.send(frame(PING, 0, 0, b"123"))), {}),
        ("headers_on_even_stream", lambda c: (c.start(), c.send(headers(2))), {}),
        ("hpack_index_0", lambda c: (c.start(), c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80"))), {}),
        ("hpack_index_beyond_table", lambda c: (c.start(), c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xbf"))), {}),
        ("hpack_truncated", lambda c: (c.start(), c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x7f"))), {}),
        ("oversized_frame", lambda c: (c.start(), c.send(frame(DATA, 0, 1, b"x" * 16385))), {}),
        ("rst_idle_stream", lambda c: (c.start(), c.send(frame(RST_STREAM, 0, 5, struct.pack(">I", 8)))), {}),
        ("window_overflow", lambda c: (c.start(), c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)))), {}),
        ("window_update_zero", lambda c: (c.start(), c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))), {}),
        # A GET with a body nobody reads (/blob streams its answer): 80 KiB against the
        # 64 KiB stream window.
        ("data_beyond_stream_window", lambda c: (
            c.start(),
            c.send(headers(1, "GET", "/blob?size=100000000", end_stream=False)),
            c.send(b"".join(frame(DATA, 0, 1, b"x" * 16384) for _ in range(5))),
        ), {}),
        ("rst_closed_stream", answered_then_reset, {"want_ping": b"stillok!"}),
    ]
    if ca:
        probes.append(("bad_preface", lambda c: c.start(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), {}))
    for name, act, want in probes:
        probe(name, host, port, ca, act, **want)


if __name__ == "__main__":
    main()
