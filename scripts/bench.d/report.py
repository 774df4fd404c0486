#!/usr/bin/env python3
"""Turn scripts/bench's raw measurements into the table, results.json, results.md and a chart.

    report.py --raw RAW.jsonl --out DIR [--meta KEY=VALUE ...] [--check]

RAW holds one JSON object per measurement (one system, one workload, one round) as written by
scripts/bench. Per system and workload this takes the median over rounds of the result, p50,
p99, CPU seconds and RSS, and the sum of errors; paf rows get ratios to nginx and to paf-kernel.
The workers rows (systems nginx-w1, nginx-w2, paf-w1, paf-w2) get a table of their own: rate,
server CPU per request (per GB for transfers) and the CPUs' worth the server used, with the
ratios paf-w2/paf-w1, paf-w2/nginx-w2 and paf-w1/nginx-w1.
Rows in seconds (the lossy-link transfers) take the median over the rounds that completed, and
their ratios are inverted (the reference's time / this time) so that above 1 is faster, as for
the other rows. Workloads that were not run at all (--rows) are left out.
Writes DIR/results.json, DIR/results.md and DIR/results.svg + DIR/results.png (with gnuplot;
skipped with a warning when it is missing) and prints the table.

--check (the smoke test): exit status 3 when any request failed or a measured row has no result;
speed is never looked at. Any other failure exits 1 (or with Python's status).
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

SYSTEMS = ["nginx", "paf-kernel", "paf"]
# The workers rows' systems (scripts/bench --rows workers): 1 and 2 workers of each.
WORKER_SYSTEMS = ["nginx-w1", "nginx-w2", "paf-w1", "paf-w2"]
# Their ratios: (label, numerator, denominator).
WORKER_RATIOS = [("paf-w2 / paf-w1", "paf-w2", "paf-w1"),
                 ("paf-w2 / nginx-w2", "paf-w2", "nginx-w2"),
                 ("paf-w1 / nginx-w1", "paf-w1", "nginx-w1")]

# id, label, unit, short chart label. "Gbit/s" rows are body bytes per second; "s" rows are the
# seconds one transfer took (lower is better), shown with its Mbit/s.
WORKLOADS = [
    ("ka50", "keep-alive GET 12 B, 50 conns", "req/s", "keep-alive\\n50 conns"),
    ("ka1000", "keep-alive GET 12 B, 1000 conns", "req/s", "keep-alive\\n1000 conns"),
    ("close", "new connection per request, 50 conns", "req/s", "Connection:\\nclose"),
    ("get4k", "keep-alive GET 4 KiB body, 50 conns", "Gbit/s", "4 KiB\\nbodies"),
    ("get64k", "keep-alive GET 64 KiB body, 50 conns", "Gbit/s", "64 KiB\\nbodies"),
    ("dl100m", "100 MB download, 1 stream", "Gbit/s", "100 MB\\ndownload"),
    ("ul100m", "100 MB upload, 1 stream", "Gbit/s", "100 MB\\nupload"),
    ("tls_ka", "HTTPS keep-alive GET 12 B, 50 conns", "req/s", "HTTPS\\nkeep-alive"),
    ("tls_hs", "HTTPS full handshakes, 50 conns", "req/s", "HTTPS\\nhandshakes"),
    ("tls_dl", "HTTPS 100 MB download", "Gbit/s", "HTTPS\\n100 MB"),
    # HTTP/2: h2load -c 50 -m 10 ("{h2n}" requests), and one 100 MB stream.
    ("h2_tls", "h2 over TLS, GET 12 B, h2load -n {h2n} -c 50 -m 10", "req/s", "h2 TLS\\nh2load"),
    ("h2c", "h2c prior knowledge, GET 12 B, h2load -n {h2n} -c 50 -m 10", "req/s", "h2c\\nh2load"),
    ("h2_dl", "h2 over TLS, 100 MB download, 1 stream", "Gbit/s", "h2 TLS\\n100 MB"),
    ("proxy", "reverse proxy to 1 upstream, 50 conns", "req/s", "reverse\\nproxy"),
    # "{idle}" is the number of idle connections held (10k; 1k with --smoke).
    ("idle", "keep-alive GET, 50 conns, {idle} idle held", "req/s", "with {idle}\\nidle held"),
    # The lossy link: 0.1% and 1% of TCP packets dropped in each direction, offloads off.
    # "{loss}" is the transfer size (32 MiB; 4 MiB with --smoke).
    ("loss0_dl", "{loss} download, no loss, offloads off", "s", "{loss} down\\nno loss, no offl."),
    ("loss0_ul", "{loss} upload, no loss, offloads off", "s", "{loss} up\\nno loss, no offl."),
    ("loss0_ka", "keep-alive GET 12 B, 50 conns, no loss, offloads off", "req/s", "keep-alive\\nno loss, no offl."),
    ("loss01_dl", "{loss} download, 0.1% loss", "s", "{loss} down\\n0.1% loss"),
    ("loss01_ul", "{loss} upload, 0.1% loss", "s", "{loss} up\\n0.1% loss"),
    ("loss01_ka", "keep-alive GET 12 B, 50 conns, 0.1% loss", "req/s", "keep-alive\\n0.1% loss"),
    ("loss1_dl", "{loss} download, 1% loss", "s", "{loss} down\\n1% loss"),
    ("loss1_ul", "{loss} upload, 1% loss", "s", "{loss} up\\n1% loss"),
    ("loss1_ka", "keep-alive GET 12 B, 50 conns, 1% loss", "req/s", "keep-alive\\n1% loss"),
]


def set_counts(idle, loss_bytes, h2n):
    """Puts the idle connection count, the lossy transfer size and h2load's request count into
    the labels."""
    k = f"{idle // 1000}k" if idle % 1000 == 0 else str(idle)
    mib = loss_bytes / (1 << 20)
    size = f"{mib:.0f} MiB" if mib == int(mib) else f"{loss_bytes:,} B"
    subst = {"{idle}": k, "{loss}": size, "{h2n}": str(h2n)}

    def fill(text):
        for key, value in subst.items():
            text = text.replace(key, value)
        return text

    for i, (wid, label, unit, short) in enumerate(WORKLOADS):
        WORKLOADS[i] = (wid, fill(label), unit, fill(short))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def wrk_errors(w):
    return (w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
            + w["status_errors"])


def h2load_errors(h):
    """Requests of an h2load run that did not succeed (not done, failed, not 2xx)."""
    return max(h["total"] - (h["succeeded"] or 0), h["non_2xx"])


def duration_s(rec):
    """How long the round's load ran, for CPU shares (None when unknown)."""
    w, h = rec.get("wrk"), rec.get("h2load")
    if w and w["duration_us"] > 0:
        return w["duration_us"] / 1e6
    if h and h.get("seconds"):
        return h["seconds"]
    return None


def work_done(rec):
    """What one round served: (count, "req") for wrk runs, (bytes, "B") for a transfer that
    completed, (None, None) otherwise."""
    if rec["kind"] in ("wrk", "idle"):
        w = rec.get("wrk")
        return (w["requests"], "req") if w and w.get("requests") else (None, None)
    if rec["kind"] == "h2load":
        h = rec.get("h2load")
        return (h["succeeded"], "req") if h and h.get("succeeded") else (None, None)
    if rec["kind"] == "curl":
        ok = rec["exit"] == 0 and rec["http_code"] == 200 and rec["bytes"] == rec["expect_bytes"]
        return (rec["bytes"], "B") if ok and rec["bytes"] else (None, None)
    return None, None


def cpu_cost(cpu_s, work, unit):
    """Server CPU per unit of work: µs per request, or s per GB (1e9 bytes)."""
    if cpu_s is None or not work:
        return None
    return cpu_s * 1e6 / work if unit == "req" else cpu_s / (work / 1e9)


def measure(rec, unit):
    """One round: (value, p50_ms, p99_ms, errors, extra) from a raw record."""
    kind = rec["kind"]
    if kind == "h2load":
        h = rec["h2load"]
        if not h or not h.get("rps"):
            return None, None, None, 1, {}
        p50 = h["p50_us"] / 1e3 if h["p50_us"] is not None else None
        p99 = h["p99_us"] / 1e3 if h["p99_us"] is not None else None
        share = h["client_cpu_s"] / h["wall_s"] if h.get("wall_s") else None
        return h["rps"], p50, p99, h2load_errors(h), {"client_share": share}
    if kind in ("wrk", "idle"):
        w = rec["wrk"]
        errors = 0 if w else 1
        value = p50 = p99 = None
        if w and w["duration_us"] > 0:
            rps = w["requests"] / (w["duration_us"] / 1e6)
            value = rps * rec.get("body_bytes", 12) * 8 / 1e9 if unit == "Gbit/s" else rps
            p50, p99 = w["p50_us"] / 1e3, w["p99_us"] / 1e3
            errors = wrk_errors(w)
        extra = {}
        if kind == "idle":
            errors += rec["failed"] + rec["closed"]
            extra = {k: rec[k] for k in ("requested", "held", "failed", "retries", "setup_s",
                                         "alive", "closed", "rss_before_kib")}
        return value, p50, p99, errors, extra
    if kind == "curl":
        ok = (rec["exit"] == 0 and rec["http_code"] == 200
              and rec["bytes"] == rec["expect_bytes"] and rec["seconds"] > 0)
        if unit == "s":
            value = rec["seconds"] if ok else None
        else:
            value = rec["bytes"] * 8 / rec["seconds"] / 1e9 if ok else None
        extra = {"exit": rec["exit"], "http_code": rec["http_code"], "bytes": rec["bytes"]} \
            if not ok else {}
        return value, None, None, 0 if ok else 1, extra
    raise ValueError(f"unknown record kind {kind}")


def describe_event(rec):
    if rec["kind"] == "died":
        return (f"{rec['system']} exited during round {rec['round']} (noticed after "
                f"{rec['workload']}, exit status {rec['status']}); the rest of its round is "
                "missing")
    return f"{rec['system']} round {rec['round']}: {rec.get('reason', rec['kind'])}"


def aggregate(records, rounds):
    """Rows per workload and system, plus the events (servers that failed to start or died)."""
    by = {}
    na = {}
    events = []
    ran = set()
    for rec in records:
        key = (rec["system"], rec["workload"])
        if rec["kind"] == "na":
            na[key] = rec["reason"]
        elif rec["kind"] in ("fail", "died"):
            events.append(describe_event(rec))
            ran.add(rec["system"])
        else:
            by.setdefault(key, []).append(rec)
            ran.add(rec["system"])
    present = {rec["workload"] for rec in records}
    rows = []
    for wid, label, unit, _ in WORKLOADS:
        if wid not in present:
            continue  # not run (--rows, or this loss level not in the mode)
        for sys_ in SYSTEMS + WORKER_SYSTEMS:
            key = (sys_, wid)
            row = {"system": sys_, "workload": wid, "label": label, "unit": unit,
                   "value": None, "p50_ms": None, "p99_ms": None, "errors": 0,
                   "cpu_s": None, "client_cpu_busy": None, "server_cpu_busy": None,
                   "server_cpu_other": None,
                   "rss_mib": None, "x_nginx": None, "x_paf_kernel": None,
                   "na": na.get(key), "rounds": []}
            recs = by.get(key, [])
            if not row["na"] and sys_ not in ran:
                continue  # system not run
            for rec in recs:
                value, p50, p99, errors, extra = measure(rec, unit)
                busy = {k: rec[k] for k in ("client_cpu_busy", "server_cpu_busy",
                                            "machine_cpu_busy", "server_cpus", "server_workers")
                        if k in rec}
                secs = duration_s(rec)
                if rec["kind"] == "curl" and rec["seconds"] > 0:
                    secs = rec["seconds"]
                if "server_cpu_busy" in rec and secs:
                    # Busy time of the server's CPUs that the server did not use: other processes
                    # (or interrupts) competing with it. Both as a share of those CPUs.
                    own = rec["cpu_s"] / secs / rec.get("server_cpus", 1)
                    busy["server_cpu_other"] = round(max(0.0, rec["server_cpu_busy"] - own), 3)
                # The scheduler's nanoseconds where scripts/bench read them, else the ticks.
                cpu = rec["cpu_ns"] / 1e9 if "cpu_ns" in rec else rec["cpu_s"]
                work, work_unit = work_done(rec)
                if work:
                    extra["work"], extra["work_unit"] = work, work_unit
                    extra["cpu_per_unit"] = cpu_cost(cpu, work, work_unit)
                if secs:
                    # The CPUs' worth the server used (2.0: two CPUs all the time).
                    extra["server_cores"] = cpu / secs
                if "loss" in rec:
                    extra["loss"] = rec["loss"]
                row["rounds"].append({"round": rec["round"], "value": value, "p50_ms": p50,
                                      "p99_ms": p99, "errors": errors, "cpu_s": rec["cpu_s"],
                                      "rss_kib": rec["rss_kib"], **busy, **extra})
            row["errors"] = sum(r["errors"] for r in row["rounds"])
            if not row["na"]:
                # A round without this measurement (its server died or did not start) counts as
                # one error.
                row["missing_rounds"] = max(0, rounds - len(recs))
                row["errors"] += row["missing_rounds"]
            for k in ("value", "p50_ms", "p99_ms", "cpu_s", "client_cpu_busy", "server_cpu_busy",
                      "server_cpu_other", "client_share", "machine_cpu_busy", "cpu_per_unit",
                      "server_cores", "server_workers"):
                row[k] = median([r.get(k) for r in row["rounds"]])
            # cpu_per_unit: server CPU µs per request ("req"), or CPU s per GB ("B").
            row["work_unit"] = next((r["work_unit"] for r in row["rounds"] if "work_unit" in r),
                                    None)
            rss = median([r["rss_kib"] for r in row["rounds"]])
            row["rss_mib"] = rss / 1024 if rss is not None else None
            if unit == "s":
                size = recs[0]["expect_bytes"] if recs else None
                row["transfer_bytes"] = size
                row["mbit_s"] = size * 8 / row["value"] / 1e6 if size and row["value"] else None
            if any("loss" in r for r in row["rounds"]):
                row["loss"] = {k: sum(r["loss"][k] for r in row["rounds"] if "loss" in r)
                               for k in ("in_seen", "in_dropped", "out_seen", "out_dropped")}
                row["loss"]["permille"] = next(r["loss"]["permille"] for r in row["rounds"]
                                               if "loss" in r)
            if wid == "idle" and row["rounds"]:
                held = median([r["held"] for r in row["rounds"]])
                before = median([r["rss_before_kib"] for r in row["rounds"]])
                row["idle"] = {
                    "held": held,
                    "requested": row["rounds"][0]["requested"],
                    "retries": sum(r["retries"] for r in row["rounds"]),
                    "setup_s": median([r["setup_s"] for r in row["rounds"]]),
                    "rss_before_mib": before / 1024 if before is not None else None,
                    "kib_per_conn": (rss - before) / held if held and rss and before else None,
                }
            rows.append(row)
    index = {(r["system"], r["workload"]): r for r in rows}
    for r in rows:
        # paf rows against the reference (nginx) and against paf on kernel sockets.
        refs = {"paf-kernel": [("nginx", "x_nginx")],
                "paf": [("nginx", "x_nginx"), ("paf-kernel", "x_paf_kernel")]}
        for ref, field in refs.get(r["system"], []):
            base = index.get((ref, r["workload"]))
            if base and base["value"] and r["value"] is not None:
                r[field] = ratio(r["value"], base["value"], r["unit"])
    return rows, events


ATTACKS = ["rapid_reset", "continuation", "hpack_bomb", "settings_flood", "ping_flood",
           "zero_window", "streams"]


def merge_counts(dicts):
    out = {}
    for d in dicts:
        for k, v in (d or {}).items():
            out[k] = out.get(k, 0) + v
    return out


def aggregate_attacks(records):
    """Per attack and system: the normal client's rate alone and with the attacker (medians
    over rounds, and the median of the per-round ratios), its errors, the server's RSS, and
    what the attacker saw (summed over rounds)."""
    by = {}
    for rec in records:
        if rec["kind"] == "attack":
            by.setdefault((rec["attack"], rec["system"]), []).append(rec)
    out = []
    for attack in ATTACKS:
        for sys_ in SYSTEMS:
            recs = by.get((attack, sys_))
            if not recs:
                continue
            rounds = []
            for rec in recs:
                a, w, t = rec["alone"], rec["with"], rec["attacker"] or {}
                alone = a["rps"] if a and a.get("rps") else None
                with_ = w["rps"] if w and w.get("rps") else None
                rounds.append({
                    "round": rec["round"], "alone_rps": alone, "with_rps": with_,
                    "ratio": with_ / alone if alone and with_ is not None else None,
                    "alone_errors": h2load_errors(a) if a else 1,
                    "with_errors": h2load_errors(w) if w else 1,
                    "with_p99_ms": w["p99_us"] / 1e3 if w and w.get("p99_us") else None,
                    "cpu_s": rec["cpu_s"], "rss_before_kib": rec["rss_before_kib"],
                    "rss_peak_kib": rec["rss_peak_kib"], "rss_after_kib": rec["rss_kib"],
                    "attacker": t, "attacker_exit": rec["attacker_exit"],
                })
            att = [r["attacker"] for r in rounds]
            cuts = [a.get("first_cut_s") for a in att if a.get("first_cut_s") is not None]
            row = {
                "attack": attack, "system": sys_, "seconds": recs[0]["seconds"],
                "rounds": rounds,
                **{k: median([r[k] for r in rounds]) for k in
                   ("alone_rps", "with_rps", "ratio", "with_p99_ms", "cpu_s", "rss_before_kib",
                    "rss_peak_kib", "rss_after_kib")},
                "alone_errors": sum(r["alone_errors"] for r in rounds),
                "with_errors": sum(r["with_errors"] for r in rounds),
                "attacker": {
                    "ran": all(a.get("units") is not None for a in att),
                    "units": sum(a.get("units", 0) for a in att),
                    "conns": sum(a.get("conns", 0) for a in att),
                    "cut": sum(a.get("cut", 0) for a in att),
                    "first_cut_s": median(cuts),
                    "goaways": merge_counts(a.get("goaways") for a in att),
                    "closed": sum(a.get("closed", 0) for a in att),
                    "open": sum(a.get("open", 0) for a in att),
                    "rst": merge_counts(a.get("rst") for a in att),
                    "stalled": sum(a.get("stalled", 0) for a in att),
                    "connect_errors": sum(a.get("connect_errors", 0) for a in att),
                },
            }
            out.append(row)
    return out


def attacker_summary(a):
    """What the attacker saw, in a few words."""
    if not a["ran"]:
        return "attacker failed"
    parts = [f"{a['units']:,} units on {a['conns']} conn(s)"]
    if a["cut"]:
        how = [f"GOAWAY {k} ×{v}" for k, v in sorted(a["goaways"].items())]
        if a["closed"]:
            how.append(f"closed ×{a['closed']}")
        parts.append(f"cut off {a['cut']}× ({', '.join(how)}), first after "
                     f"{fmt(a['first_cut_s'], '.2f')} s")
    else:
        parts.append("never cut off")
    if a["open"]:
        parts.append(f"{a['open']} open at the end")
    if a["stalled"]:
        parts.append(f"{a['stalled']} stalled (server stopped reading)")
    if a["rst"]:
        parts.append("RST_STREAM " + ", ".join(f"{k} ×{v:,}" for k, v in sorted(a["rst"].items())))
    return "; ".join(parts)


ATTACK_HEADER = ["attack", "system", "alone", "with attack", "ratio", "errors", "RSS MiB",
                 "attacker"]


def attack_rows(attacks):
    mib = (lambda k: fmt(k / 1024 if k is not None else None, ".0f"))
    out = []
    for r in attacks:
        out.append([
            r["attack"], r["system"],
            fmt(r["alone_rps"], ",.0f") + " req/s", fmt(r["with_rps"], ",.0f") + " req/s",
            fmt(r["ratio"], ".2f") + ("×" if r["ratio"] is not None else ""),
            f"{r['alone_errors']} / {r['with_errors']}",
            f"{mib(r['rss_before_kib'])} / {mib(r['rss_peak_kib'])} / {mib(r['rss_after_kib'])}",
            attacker_summary(r["attacker"]),
        ])
    return out


def attack_markdown(attacks, meta):
    if not attacks:
        return []
    lines = ["", "## HTTP/2 attacks under normal load", "",
             f"A normal client (h2load -c 10 -m 10, GET /bench, h2c, {meta.get('attack_seconds')} "
             "s) alone and again while one attacker runs (tests/tools/h2_attack.py, nice 19 on "
             "the clients' CPU); medians over rounds, ratio = with / alone. Errors: the normal "
             "client's, alone / with the attack. RSS: the server's before / peak during / 1 s "
             "after. Reported, not judged.", "",
             "| " + " | ".join(ATTACK_HEADER) + " |",
             "|" + "|".join(["---", "---", "--:", "--:", "--:", "--:", "--:", "---"]) + "|"]
    for b in attack_rows(attacks):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in b) + " |")
    return lines


def print_attacks(attacks):
    if not attacks:
        return
    body = attack_rows(attacks)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(ATTACK_HEADER)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(ATTACK_HEADER, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for b in body:
        print("  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip())


def ratio(value, base, unit):
    """value relative to base, above 1 = better (for times: base / value)."""
    if unit == "s":
        return base / value if value > 0 else None
    return value / base


def fmt_value(v, unit, row=None):
    if v is None:
        return None
    if unit == "s":
        mbit = row.get("mbit_s") if row else None
        return f"{v:.2f} s" + (f" ({mbit:,.0f} Mbit/s)" if mbit is not None else "")
    return f"{v:,.0f} req/s" if unit == "req/s" else f"{v:.2f} Gbit/s"


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def table_rows(rows):
    out = []
    for r in rows:
        if r["na"]:
            result = f"n/a ({r['na']})" if r["na"] else "n/a"
            out.append([r["system"], r["label"], result, "", "", "", "", "", "", ""])
            continue
        result = fmt_value(r["value"], r["unit"], r) or "failed"
        if r["unit"] == "s" and r["value"] is not None and r["errors"]:
            result += f" ({r['errors']} failed)"
        if client_bound(r):
            result += " †"
        if (r["server_cpu_other"] or 0) >= CONTENDED:
            result += " ‡"
        out.append([
            r["system"], r["label"], result,
            fmt(r["p50_ms"], ".2f") + (" ms" if r["p50_ms"] is not None else ""),
            fmt(r["p99_ms"], ".2f") + (" ms" if r["p99_ms"] is not None else ""),
            str(r["errors"]), fmt(r["cpu_s"], ".2f"), fmt(r["rss_mib"], ".1f"),
            fmt(r["x_nginx"], ".2f", "") + ("×" if r["x_nginx"] is not None else ""),
            fmt(r["x_paf_kernel"], ".2f", "") + ("×" if r["x_paf_kernel"] is not None else ""),
        ])
    return out


# A client CPU this busy means the load generator, not the server, may set the pace.
CLIENT_BOUND = 0.95


def client_bound(r):
    """The client's CPU was busy (wrk's CPU pinned), or h2load's one thread was."""
    return ((r["client_cpu_busy"] or 0) >= CLIENT_BOUND
            or (r.get("client_share") or 0) >= CLIENT_BOUND)
# This share of the server's CPU going to something else means other work competed with it.
CONTENDED = 0.15

HEADER = ["system", "workload", "result", "p50", "p99", "errors", "CPU s", "RSS MiB",
          "× nginx", "× paf-kernel"]


def print_table(rows):
    body = table_rows(rows)
    if not body:
        return
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(HEADER)]
    right = {3, 4, 5, 6, 7, 8, 9}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print(line(HEADER))
    print("  ".join("-" * w for w in widths))
    last = None
    for r, b in zip(rows, body):
        if last is not None and r["workload"] != last:
            print()
        last = r["workload"]
        print(line(b))


WORKER_HEADER = ["workload", "measure", *WORKER_SYSTEMS, *(r[0] for r in WORKER_RATIOS)]


def worker_lines(rows):
    """The workers table: per workload three lines (result; server CPU per request or per GB,
    with the CPUs' worth used; the whole machine's busy share) over the four systems, and the
    ratios. Empty when no workers-row system ran."""
    index = {(r["system"], r["workload"]): r for r in rows}
    if not any(r["system"] in WORKER_SYSTEMS for r in rows):
        return []
    out = []
    for wid, label, unit, _ in WORKLOADS:
        cells = {s: index.get((s, wid)) for s in WORKER_SYSTEMS}
        if not any(cells.values()):
            continue
        per = next((r["work_unit"] for r in cells.values() if r and r.get("work_unit")), "req")
        rate = [label, "result"]
        cost = ["", "server CPU µs / request" if per == "req" else "server CPU s / GB"]
        busy = ["", "machine CPU busy"]
        for s in WORKER_SYSTEMS:
            r = cells[s]
            if r is None:
                rate.append("")
                cost.append("")
                busy.append("")
                continue
            if r["na"]:
                rate.append(f"n/a ({r['na']})")
                cost.append("")
                busy.append("")
                continue
            text = fmt_value(r["value"], r["unit"], r) or "failed"
            if r["errors"]:
                text += f" ({r['errors']} errors)"
            rate.append(text)
            c = r.get("cpu_per_unit")
            spec = ".1f" if per == "req" else ".2f"
            cost.append(fmt(c, spec) + (f" ({r['server_cores']:.2f} CPU)"
                                        if r.get("server_cores") is not None else ""))
            m = r.get("machine_cpu_busy")
            busy.append(f"{100 * m:.0f}%" if m is not None else "-")
        for _, a, b in WORKER_RATIOS:
            ra, rb = cells[a], cells[b]
            x = (ratio(ra["value"], rb["value"], unit)
                 if ra and rb and ra["value"] is not None and rb["value"] else None)
            rate.append(fmt(x, ".2f", "") + ("×" if x is not None else ""))
            ca = ra.get("cpu_per_unit") if ra else None
            cb = rb.get("cpu_per_unit") if rb else None
            y = ca / cb if ca is not None and cb else None
            cost.append(fmt(y, ".2f", "") + ("×" if y is not None else ""))
            busy.append("")
        out += [rate, cost, busy]
    return out


def worker_markdown(rows, meta):
    body = worker_lines(rows)
    if not body:
        return []
    lines = ["", "## Workers: paf and nginx with 1 and 2 workers", "",
             "Per workload, medians over rounds: the result; the server's CPU (user + system, "
             "every process and thread of it) per request, or per GB for the upload (lower is "
             "better), with the CPUs' worth the server used in brackets (CPU seconds per second "
             "of the run: 2.00 = both CPUs all the time); and how busy the whole machine was "
             "(every CPU, clients included). Ratios: of results, above 1 = the first is faster; "
             "of CPU per request, below 1 = the first needs less. With the client on the same "
             "CPUs, CPU per request shows how a server would scale where the client, not the "
             "server, limits the rate. CPU time is the scheduler's (nanoseconds, schedstat; 10 "
             "ms ticks on a kernel without it). paf's CPU includes the kernel's receive path for "
             "the frames it writes "
             "to its TAP (bench/README.md, Caveats). Pinning: "
             f"{meta.get('pinning', '?')}.", "",
             "| " + " | ".join(WORKER_HEADER) + " |",
             "|" + "|".join(["---"] * 2 + ["--:"] * (len(WORKER_HEADER) - 2)) + "|"]
    for b in body:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in b) + " |")
    return lines


def print_workers(rows):
    body = worker_lines(rows)
    if not body:
        return
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(WORKER_HEADER)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print()
    print(line(WORKER_HEADER))
    print("  ".join("-" * w for w in widths))
    for i, b in enumerate(body):
        if i and i % 3 == 0:
            print()
        print(line(b))


def markdown(rows, meta, events, attacks=(), charts=()):
    m = meta
    lines = [
        "# paf benchmark results",
        "",
        f"- **Date:** {m.get('date', '?')}",
        f"- **Command:** `{m.get('command', '?')}` ({m.get('mode')} mode: {m.get('rounds')} "
        f"round(s) of {m.get('duration_s')} s wrk runs per workload, medians quoted; "
        f"{m.get('wall_s')} s in all)",
        f"- **Machine:** {m.get('nproc')} × {m.get('cpu_model')}, Linux {m.get('kernel')}; "
        f"{m.get('pinning')}",
        f"- **Software:** paf {m.get('paf_commit')}, nginx {m.get('nginx')}, "
        f"wrk {m.get('wrk')} ({m.get('wrk_threads')} thread), h2load {m.get('h2load', '-')}, curl",
        f"- **Load average** at start {m.get('load_start')}, at end {m.get('load_end')}; "
        f"compiler processes seen at round starts: up to {m.get('compiler_processes')}"
        + (" — **other work was running: numbers are noisy**"
           if int(m.get("compiler_processes") or 0) > 0 else ""),
    ]
    if rows:
        lines += ["", "| " + " | ".join(HEADER) + " |",
                  "|" + "|".join(["---"] * 2 + ["--:"] * (len(HEADER) - 2)) + "|"]
    for b in table_rows(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in b) + " |")
    if events:
        lines += ["", "**Failures during the run:**", ""] + [f"- {e}" for e in events]
    if any(client_bound(r) for r in rows):
        lines += ["", f"† the client's CPU was at least {CLIENT_BOUND:.0%} busy (for h2load rows: "
                  "or h2load's one thread used that share of a CPU): the client may have set the "
                  "pace, so the server's own limit can be higher."]
    h2 = [r for r in rows if r.get("client_share") is not None]
    if h2:
        lines += ["", "h2load's own CPU (seconds of CPU per second of run, one thread) and the "
                  "server's CPU seconds, medians:", ""]
        for r in h2:
            lines.append(f"- {r['system']}, {r['workload']}: h2load {r['client_share']:.2f}, "
                         f"server {fmt(r['cpu_s'], '.2f')} s")
    if any((r["server_cpu_other"] or 0) >= CONTENDED for r in rows):
        lines += ["", f"‡ at least {CONTENDED:.0%} of the server's CPU went to something other than "
                  "the server (other processes, interrupts): the result is lower than it would be "
                  "on a quiet machine."]
    lossy = [r for r in rows if r.get("loss")]
    if lossy:
        lines += ["", "Lossy-link rows (`loss…`): TCP packets dropped at random on the client's "
                  "interface, both directions, offloads off (paf `--no-offload`). Transfers are "
                  f"bounded by curl `--max-time {m.get('loss_max_time_s', '?')}`; a failed or "
                  "timed-out transfer counts as an error and the time is the median of the "
                  "completed ones. × nginx for a time is nginx's time / this time (above 1 = "
                  "faster). Packets dropped / seen, summed over rounds (in = towards the "
                  "client, out = from it):", ""]
        for r in lossy:
            lo = r["loss"]
            share = (lambda d, n: f"{100 * d / n:.2f}%" if n else "-")
            lines.append(f"- {r['system']}, {r['label']}: in {lo['in_dropped']:,}/{lo['in_seen']:,} "
                         f"({share(lo['in_dropped'], lo['in_seen'])}), out "
                         f"{lo['out_dropped']:,}/{lo['out_seen']:,} "
                         f"({share(lo['out_dropped'], lo['out_seen'])})")
    idle = [r for r in rows if r["workload"] == "idle" and r.get("idle")]
    if idle:
        lines += ["", "Idle connections (the `idle held` rows):", ""]
        for r in idle:
            i = r["idle"]
            lines.append(
                f"- {r['system']}: {fmt(i['held'], '.0f')} of {i['requested']} held "
                f"(set up in {fmt(i['setup_s'], '.1f')} s, {i['retries']} refused connects "
                f"retried); RSS {fmt(i['rss_before_mib'], '.1f')} MiB before, "
                f"{fmt(r['rss_mib'], '.1f')} MiB while held, "
                f"{fmt(i['kib_per_conn'], '.1f')} KiB per idle connection")
    lines += worker_markdown(rows, meta)
    lines += attack_markdown(attacks, meta)
    if "results.svg" in charts:
        lines += ["", "![requests/s and Gbit/s relative to nginx](results.svg)"]
    lines.append("")
    return "\n".join(lines) + "\n"


GNUPLOT = r"""
set terminal {term}
set output '{out}'
set title "paf vs nginx: throughput relative to nginx (higher is better; median of {rounds} round(s))" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile separator '\t'
set datafile missing '?'
set yrange [0:{ymax}]
set ylabel "relative to nginx (nginx = 1.0; its own result is under each group)"
set grid ytics lc rgb '#dddddd'
set key top right
set bmargin 5
set xtics noenhanced nomirror scale 0 font ',9'
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#555555'
plot '{data}' using 2:xtic(1) title 'nginx' lc rgb '#009639', \
     '' using 3 title 'paf-kernel (kernel sockets)' lc rgb '#4a7ebb', \
     '' using 4 title 'paf (userspace stack)' lc rgb '#e6862a', \
     '' using ($0 - 0.25):(column(5) + {lift}):8 with labels font ',9' notitle, \
     '' using 0:(column(6) + {lift}):9 with labels font ',9' notitle, \
     '' using ($0 + 0.25):(column(7) + {lift}):10 with labels font ',9' notitle
"""


def chart(rows, meta, out):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report: gnuplot not found (scripts/install-deps): no chart", file=sys.stderr)
        return []
    index = {(r["system"], r["workload"]): r for r in rows}
    ran = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    data, top = [], 1.0
    for wid, _, unit, short in WORKLOADS:
        base = index.get(("nginx", wid))
        if not base or not base["value"]:
            continue
        # Per system: bar height ('?' = no bar), label height, label text.
        bars, heights, texts = [], [], []
        for s in SYSTEMS:
            r = index.get((s, wid))
            x = ratio(r["value"], base["value"], unit) if r and r["value"] is not None else None
            top = max(top, x or 0)
            bars.append("?" if x is None else f"{x:.4f}")
            heights.append(f"{x or 0:.4f}")
            if x is not None:
                texts.append(f"{x:.2f}")
            elif s not in ran:
                texts.append("")
            else:
                texts.append("n/a" if r and r["na"] else "failed")
        v = base["value"]
        if unit == "req/s":
            absolute = f"{v / 1000:.1f}k/s" if v >= 1000 else f"{v:.0f}/s"
        elif unit == "s":
            absolute = f"{v:.2f} s"
        else:
            absolute = f"{v:.3g} Gb/s"
        data.append("\t".join([f"{short}\\n(nginx {absolute})", *bars, *heights, *texts]))
    if not data:
        return []
    datafile = out / ".chart.tsv"
    datafile.write_text("\n".join(data) + "\n")
    made = []
    # Wider with more groups (the lossy rows add six).
    w = max(1400, 110 * len(data))
    for name, term in (("results.svg", f"svg size {w},620 dynamic font 'sans,11'"),
                       ("results.png", f"pngcairo size {w * 8 // 7},700 font 'sans,11'")):
        script = GNUPLOT.format(term=term, out=out / name, data=datafile, rounds=meta.get("rounds"),
                                ymax=round(top * 1.2 + 0.05, 2), lift=round(top * 0.03, 3))
        p = subprocess.run([gnuplot], input=script, text=True, capture_output=True, check=False)
        if p.returncode != 0:
            print(f"report: gnuplot failed for {name}: {p.stderr.strip()}", file=sys.stderr)
        else:
            made.append(name)
    datafile.unlink()
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    meta = dict(kv.split("=", 1) for kv in args.meta)
    set_counts(int(meta.get("idle_connections", 10000)),
               int(meta.get("loss_transfer_bytes", 33554432)),
               int(meta.get("h2load_requests", 200000)))
    records = [json.loads(l) for l in args.raw.read_text().splitlines() if l.strip()]
    rows, events = aggregate(records, int(meta.get("rounds", 1)))
    attacks = aggregate_attacks(records)
    for e in events:
        print(f"bench: {e}", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"meta": meta, "events": events, "rows": rows, "attacks": attacks}, indent=1)
        + "\n")
    made = chart(rows, meta, args.out)
    (args.out / "results.md").write_text(markdown(rows, meta, events, attacks, made))

    print()
    print_table(rows)
    print_workers(rows)
    print_attacks(attacks)
    print()
    print(f"bench: wrote {args.out}/results.json, results.md"
          + "".join(f", {m}" for m in made))

    if args.check:
        bad = [f"{r['system']} {r['workload']}: "
               + (f"{r['errors']} errors" if r["errors"] else "no result")
               for r in rows if not r["na"] and (r["errors"] or r["value"] is None)]
        # Attack rows: the normal client must get every answer, alone and under the attack, and
        # the attacker must have run.
        bad += [f"{a['system']} attack {a['attack']}: normal client "
                f"{a['alone_errors']} errors alone, {a['with_errors']} with the attack"
                for a in attacks if a["alone_errors"] or a["with_errors"]]
        bad += [f"{a['system']} attack {a['attack']}: the attacker did not run"
                for a in attacks if not a["attacker"]["ran"]]
        bad += events
        if bad:
            print("bench: smoke check FAILED:\n  " + "\n  ".join(bad), file=sys.stderr)
            sys.exit(3)
        print("bench: smoke check passed: every request succeeded")


if __name__ == "__main__":
    main()
