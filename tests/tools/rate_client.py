"""One keep-alive HTTP client bound to a source address, for the per-client limit tests.

    rate_client.py HOST SOURCE N PACE
makes N GET /hello requests on one connection from SOURCE, one every PACE seconds (0: as fast
as it can), and prints one line of `key=value` fields: `ok` (200s), `limited` (429s), `other`,
`retry` (the last Retry-After seen, `-` if none), `secs` and `mean_ms` (mean latency).
"""
import http.client
import sys
import time

host, src, n, pace = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection(host, 80, timeout=10, source_address=(src, 0))
codes, lat, retry = {}, [], None
start = time.monotonic()
for i in range(n):
    t = time.monotonic()
    conn.request("GET", "/hello")
    r = conn.getresponse()
    r.read()
    lat.append(time.monotonic() - t)
    codes[str(r.status)] = codes.get(str(r.status), 0) + 1
    if r.status == 429:
        retry = r.getheader("Retry-After")
    if pace > 0:
        wait = start + (i + 1) * pace - time.monotonic()
        if wait > 0:
            time.sleep(wait)
ok = codes.pop("200", 0)
limited = codes.pop("429", 0)
print(
    f"ok={ok} limited={limited} other={sum(codes.values())} retry={retry or '-'} "
    f"secs={time.monotonic() - start:.3f} mean_ms={1000 * sum(lat) / len(lat):.3f}"
)
