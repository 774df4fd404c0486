#!/usr/bin/env python3
"""Run h2load and print its result as one line, `H2LOADJSON {...}`, for scripts/bench.

    h2load_json.py LOG -- H2LOAD-ARGS...

h2load (nghttp2 1.52) prints min/max/mean latencies only; the percentiles come from its
per-request log (`--log-file`: start time, status, microseconds to the end of the response),
written to LOG and read back. Also recorded: h2load's own CPU seconds (user + system, from
getrusage of the child), to tell when the client set the pace (h2load runs one thread, so a
CPU share near 1 means it was the bottleneck). Prints nothing when h2load failed to run or
printed no summary; h2load's output goes to stderr.
"""

import json
import re
import resource
import subprocess
import sys
import time


def field(text, pattern, conv=float):
    m = re.search(pattern, text, re.M)
    return conv(m.group(1)) if m else None


def percentile(sorted_xs, q):
    if not sorted_xs:
        return None
    i = min(len(sorted_xs) - 1, max(0, round(q * (len(sorted_xs) - 1))))
    return sorted_xs[i]


def main():
    log, sep, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if sep != "--" or not args:
        sys.exit("usage: h2load_json.py LOG -- H2LOAD-ARGS...")
    t0 = time.monotonic()
    p = subprocess.run(["h2load", "--log-file", log, *args], capture_output=True, text=True,
                       check=False)
    wall = time.monotonic() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stderr.write(p.stdout + p.stderr)
    out = p.stdout
    done = field(out, r"^requests: .*?(\d+) done", int)
    if done is None:
        sys.stderr.write(f"h2load exited {p.returncode} without a summary\n")
        return
    latencies, non2xx = [], 0
    try:
        with open(log) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    latencies.append(int(parts[2]))
                    if not parts[1].startswith("2"):
                        non2xx += 1
    except OSError:
        pass
    latencies.sort()
    # "finished in 77.95ms, ..." or "... 3.00s, ...".
    m = re.search(r"^finished in ([0-9.]+)(us|ms|s), ([0-9.]+) req/s", out, re.M)
    seconds = float(m.group(1)) / {"us": 1e6, "ms": 1e3, "s": 1}[m.group(2)] if m else None
    r = {
        "exit": p.returncode,
        "seconds": seconds,
        "rps": float(m.group(3)) if m else None,
        "total": field(out, r"^requests: (\d+) total", int),
        "done": done,
        "succeeded": field(out, r"^requests: .*?(\d+) succeeded", int),
        "failed": field(out, r"^requests: .*?(\d+) failed", int),
        "errored": field(out, r"^requests: .*?(\d+) errored", int),
        "timeout": field(out, r"^requests: .*?(\d+) timeout", int),
        "non_2xx": non2xx,
        "logged": len(latencies),
        "p50_us": percentile(latencies, 0.50),
        "p99_us": percentile(latencies, 0.99),
        "client_cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "wall_s": round(wall, 3),
    }
    print("H2LOADJSON " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
