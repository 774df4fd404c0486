"""A client behind a pretend load balancer: sends a PROXY protocol v1 header naming a client
address of our choosing, then an HTTP request.

    proxy_probe.py get HOST CLIENT_IP          GET /hello, Connection: close
    proxy_probe.py hold HOST CLIENT_IP SECS    GET /hello keep-alive, then hold the connection

Prints the status code, or `reset` / `closed` when the server ended the connection without one.
"""
import socket
import sys

mode, host, client = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.create_connection((host, 80), timeout=10)
conn = "close" if mode == "get" else "keep-alive"
s.sendall(
    f"PROXY TCP4 {client} {host} 40000 80\r\n".encode()
    + f"GET /hello HTTP/1.1\r\nHost: paf.test\r\nConnection: {conn}\r\n\r\n".encode()
)
try:
    head = s.recv(4096)
except ConnectionResetError:
    print("reset", flush=True)
    sys.exit(0)
if not head:
    print("closed", flush=True)
    sys.exit(0)
print(head.split(b" ")[1].decode(), flush=True)
if mode == "hold":
    s.settimeout(float(sys.argv[4]))
    try:
        s.recv(1)
    except (socket.timeout, ConnectionResetError):
        pass
s.close()
