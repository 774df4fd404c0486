#!/usr/bin/env python3
"""A WebSocket echo server (Debian's python3-websockets 10.4, asyncio) for the tunnel tests.

Every message is sent back as it came (text as text, binary as binary). A connection whose
path ends in `/close` echoes its first message, then closes with code 4000, reason "bye" (a
close from the upstream's end). No pings (ping_interval=None): an idle connection stays idle,
so the proxy's idle timeout is what ends it. No message size limit.

Prints `listening` once bound, then one line per connection that ends:
`closed PATH CODE` (the close code the server saw; 1006 when the TCP stream ended without a
closing handshake).

usage: ws_echo.py HOST PORT [CERT KEY]   (with CERT and KEY: TLS, wss://)
"""
import asyncio
import ssl
import sys

import websockets


async def handler(ws):
    path = ws.path
    try:
        async for msg in ws:
            await ws.send(msg)
            if path.endswith("/close"):
                await ws.close(code=4000, reason="bye")
                break
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    print("closed %s %s" % (path, ws.close_code), flush=True)


async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    tls = None
    if len(sys.argv) > 4:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[3], sys.argv[4])
    async with websockets.serve(
        handler, host, port, ssl=tls, max_size=None, ping_interval=None
    ):
        print("listening", flush=True)
        await asyncio.Future()


asyncio.run(main())
