#!/usr/bin/env python3
"""Open N TCP connections at once, send a distinct payload on each, half-close, and check that
exactly that payload comes back (an echo server). Prints `ok N` or the failures; exit 1 on any.

usage: tcp_burst.py HOST PORT N [PAYLOAD_BYTES] [TIMEOUT_S]
"""
import errno
import os
import selectors
import socket
import sys
import time


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 20.0
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(n):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS):
            print(f"conn {i}: connect: {os.strerror(rc)}")
            return 1
        payload = (f"{i:08d}".encode() * (size // 8 + 1))[:size]
        state[s] = {"i": i, "out": payload, "sent": 0, "got": bytearray(), "want": payload,
                    "shut": False}
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    failures = []
    done = 0
    deadline = time.monotonic() + timeout
    while done + len(failures) < n and time.monotonic() < deadline:
        for key, mask in sel.select(timeout=0.5):
            s, st = key.fileobj, state[key.fileobj]
            try:
                if mask & selectors.EVENT_WRITE and st["sent"] < len(st["out"]):
                    st["sent"] += s.send(st["out"][st["sent"]:])
                if st["sent"] == len(st["out"]) and not st["shut"]:
                    s.shutdown(socket.SHUT_WR)
                    st["shut"] = True
                    sel.modify(s, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    data = s.recv(65536)
                    if data:
                        st["got"] += data
                    else:
                        sel.unregister(s)
                        s.close()
                        if bytes(st["got"]) == st["want"]:
                            done += 1
                        else:
                            failures.append(f"conn {st['i']}: got {len(st['got'])} bytes, "
                                            f"want {len(st['want'])} (content differs)")
            except OSError as e:
                failures.append(f"conn {st['i']}: {e}")
                sel.unregister(s)
                s.close()
    pending = n - done - len(failures)
    if pending:
        failures.append(f"{pending} connections unfinished after {timeout}s")
    if failures:
        print("\n".join(failures[:20]))
        print(f"failed {len(failures)} ok {done}")
        return 1
    print(f"ok {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
