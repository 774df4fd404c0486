#!/usr/bin/env python3
"""A WebSocket client (Debian's python3-websockets 10.4) for the tunnel tests: one scenario per
run, against URL (ws:// or wss://, verified against CA for wss). Exits 0 and prints what it
saw, or exits 1 with the reason.

  echo URL [CA]          text and binary messages echoed, then MEGABYTES (default 10) MB each
                         way at once in 1 MiB binary messages, compared byte for byte
  idle URL SECS [CA]     one echoed message, then nothing: the connection must be closed by the
                         other end within 3 × SECS; prints `closed after S.SS s code C`
  client-close URL [CA]  one echoed message, then a close from this end (code 1000): prints
                         `closed CODE` (the code the other end answered)
  server-close URL [CA]  one echoed message to a path ending in /close: the server closes;
                         prints `closed CODE REASON`

No pings (ping_interval=None), no message size limit.
"""
import asyncio
import hashlib
import os
import random
import ssl
import sys
import time

import websockets

MIB = 1 << 20


def context(url, ca):
    if not url.startswith("wss:"):
        return None
    tls = ssl.create_default_context(cafile=ca)
    return tls


async def connect(url, ca):
    return await websockets.connect(
        url,
        ssl=context(url, ca),
        server_hostname="paf.test" if url.startswith("wss:") else None,
        max_size=None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=30,
    )


async def roundtrip(ws, msg):
    await ws.send(msg)
    got = await asyncio.wait_for(ws.recv(), 30)
    if got != msg:
        raise SystemExit("echo differs: sent %r, got %r" % (msg[:40], got[:40]))


async def echo(url, ca):
    megabytes = int(os.environ.get("MEGABYTES", "10"))
    ws = await connect(url, ca)
    for msg in ["hello", "ünïcödé ✓", b"\x00\x01binary\xff"]:
        await roundtrip(ws, msg)
    rng = random.Random(16)
    chunks = [rng.randbytes(MIB) for _ in range(megabytes)]
    sent = hashlib.sha256(b"".join(chunks)).hexdigest()
    started = time.monotonic()

    async def send():
        for c in chunks:
            await ws.send(c)

    async def receive():
        h, n = hashlib.sha256(), 0
        while n < megabytes * MIB:
            m = await asyncio.wait_for(ws.recv(), 60)
            h.update(m)
            n += len(m)
        return h.hexdigest(), n

    _, (got, n) = await asyncio.gather(send(), receive())
    took = time.monotonic() - started
    if got != sent or n != megabytes * MIB:
        raise SystemExit("bulk echo differs: %d bytes, sha256 %s, want %s" % (n, got, sent))
    await ws.close()
    print("ok %d bytes each way in %.2f s, sha256 %s" % (n, took, got))


async def idle(url, secs, ca):
    ws = await connect(url, ca)
    await roundtrip(ws, "x")
    quiet = time.monotonic()
    try:
        await asyncio.wait_for(ws.wait_closed(), 3 * secs)
    except asyncio.TimeoutError:
        raise SystemExit("still open after %.1f s" % (3 * secs))
    print("closed after %.2f s code %s" % (time.monotonic() - quiet, ws.close_code))


async def client_close(url, ca):
    ws = await connect(url, ca)
    await roundtrip(ws, "bye?")
    await ws.close(code=1000, reason="done")
    print("closed %s" % ws.close_code)


async def server_close(url, ca):
    ws = await connect(url, ca)
    await roundtrip(ws, "last")
    await asyncio.wait_for(ws.wait_closed(), 30)
    print("closed %s %s" % (ws.close_code, ws.close_reason))


def main():
    mode, url, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode == "echo":
        asyncio.run(echo(url, rest[0] if rest else None))
    elif mode == "idle":
        asyncio.run(idle(url, float(rest[0]), rest[1] if len(rest) > 1 else None))
    elif mode == "client-close":
        asyncio.run(client_close(url, rest[0] if rest else None))
    elif mode == "server-close":
        asyncio.run(server_close(url, rest[0] if rest else None))
    else:
        raise SystemExit("unknown mode %r" % mode)


main()
