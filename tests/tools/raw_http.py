#!/usr/bin/env python3
"""Raw HTTP/1 exchanges for the malformed-input suite: each case sends bytes exactly as given on
one connection, reads what comes back, then sends a known-good request on a FRESH connection.

CASES is a file with one case per line, fields separated by single spaces:
  ID PORT PAYLOAD_HEX FOLLOWUP_HEX REPLIES
For each case, in order:
  1. connect to HOST:PORT, send PAYLOAD (all of it if the server takes it; a send the server
     refuses is not an error, the reply is still read), never half-close;
  2. read until the server closes (EOF or reset), or LIMIT_S pass in all, or, once REPLIES
     complete responses (framed by Content-Length) are in, QUIET_MS pass without another byte
     (the connection was left open; the quiet time is there to catch an extra response);
  3. connect again, send FOLLOWUP, read until it closes or its one response is followed by
     QUIET_MS of silence (the follow-up asks `Connection: close`).
One line per case on stdout:
  ID HOW GOT_HEX AFTER_HOW AFTER_HEX MS
where HOW/AFTER_HOW is `eof` (the server closed), `reset`, `open` (quiet after a reply: the
connection stays open), `silent` (not closed within LIMIT_S, fewer replies than expected) or
`refused` (no connect),
GOT_HEX the bytes received (`-` when none), MS the time of step 1-2 in milliseconds. Every wait is
bounded, so the whole run is bounded by about N * (LIMIT_S * 2 + 10) seconds.

usage: raw_http.py HOST CASES [QUIET_MS] [LIMIT_S]
"""
import socket
import sys
import time


def complete_responses(data):
    """How many complete responses `data` starts with (each framed by Content-Length; a
    response without one ends the count)."""
    n, at = 0, 0
    while True:
        end = data.find(b"\r\n\r\n", at)
        if end < 0:
            return n
        length = None
        for line in data[at:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        if length is None or len(data) < end + 4 + length:
            return n
        n, at = n + 1, end + 4 + length


def exchange(host, port, payload, replies, quiet, limit):
    """One connection: returns (how, bytes received)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        try:
            s.connect((host, port))
        except OSError:
            return ("refused", b"")
        start = time.monotonic()
        deadline = start + limit
        try:
            s.settimeout(limit)
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # the server stopped reading (it rejected the request): read its answer
        got = bytearray()
        while True:
            left = deadline - time.monotonic()
            wait = min(left, quiet) if complete_responses(got) >= replies else left
            if wait <= 0:
                return ("open" if complete_responses(got) >= replies else "silent", bytes(got))
            s.settimeout(wait)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return ("open" if complete_responses(got) >= replies else "silent", bytes(got))
            except ConnectionResetError:
                return ("reset", bytes(got))
            if not chunk:
                return ("eof", bytes(got))
            got += chunk
    finally:
        s.close()


def main():
    host, cases = sys.argv[1], sys.argv[2]
    quiet = (float(sys.argv[3]) if len(sys.argv) > 3 else 300.0) / 1000.0
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    with open(cases) as f:
        lines = [line.split() for line in f if line.strip()]
    for case_id, port, payload, followup, replies in lines:
        t0 = time.monotonic()
        how, got = exchange(host, int(port), bytes.fromhex(payload), int(replies), quiet, limit)
        ms = int((time.monotonic() - t0) * 1000)
        after_how, after = exchange(host, int(port), bytes.fromhex(followup), 1, quiet, limit)
        print(case_id, how, got.hex() or "-", after_how, after.hex() or "-", ms, flush=True)


if __name__ == "__main__":
    main()
