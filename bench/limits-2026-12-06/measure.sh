#!/usr/bin/env bash
# The by-hand measurements of bench/limits-2026-12-06 (run as root from the repository root):
#
#   bench/limits-2026-12-06/measure.sh upload N PAF_BIN...   N uploads of 100 MB to each paf
#       binary (on its TAP, scripts/netns) and to nginx (over a veth): median rate, and the
#       median CPU time of the client (curl, user and system) per upload
#   bench/limits-2026-12-06/measure.sh ka1000 PAF_BIN...     wrk -t1 -c1000 -d5s --latency
#       against each paf binary and nginx
#
# Servers on CPU 1, clients on CPU 0, one worker each. PAF_BIN may be prefixed with
# VAR=value, set in paf's environment (e.g. PAF_SPIN_US=200=/path/to/paf for the busy-poll
# experiment: the first '=' after the variable's value separates it from the path).
set -euo pipefail

mode=${1:?upload or ka1000}
shift
if [[ $mode == upload ]]; then
    uploads=${1:?number of uploads}
    shift
fi
work=$(mktemp -d /tmp/paf-limits.XXXXXX)
ns=paf-lim$$ cli=paf-limc$$ srv=paf-lims$$
cleanup() {
    [[ -f $work/nginx.pid ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    scripts/netns down "$ns" >/dev/null 2>&1 || true
    ip netns del "$cli" 2>/dev/null || true
    ip netns del "$srv" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
if [[ -n ${BODY:-} ]]; then cp "$BODY" "$work/body"; else head -c 100000000 /dev/urandom >"$work/body"; fi

# client NAMESPACE URL: the row's client, pinned to CPU 0.
client() {
    local in=$1 url=$2
    if [[ $mode == ka1000 ]]; then
        ip netns exec "$in" taskset -c 0 wrk -t1 -c1000 -d1s "$url/bench" >/dev/null
        ip netns exec "$in" taskset -c 0 wrk -t1 -c1000 -d5s --latency "$url/bench" |
            awk '/Requests\/sec/ {r=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2}
                 END {printf "%.0f req/s, p50 %s, p99 %s\n", r, p50, p99}'
        return
    fi
    python3 - "$in" "$url/drop" "$uploads" "$work/body" <<'EOF'
import resource, subprocess, sys
ns, url, n, body = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rate, user, system = [], [], []
for _ in range(n):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "taskset", "-c", "0", "curl", "-s", "-o", "/dev/null",
         "-H", "Expect:", "-w", "%{size_upload} %{speed_upload}", "-T", body, url],
        capture_output=True, text=True, check=True).stdout.split()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if int(out[0]) != 100_000_000:
        sys.exit(f"short upload: {out[0]} bytes")
    rate.append(float(out[1]) * 8 / 1e9)
    user.append((r1.ru_utime - r0.ru_utime) * 1e3)
    system.append((r1.ru_stime - r0.ru_stime) * 1e3)
med = lambda v: sorted(v)[len(v) // 2]
print(f"{med(rate):.1f} Gbit/s; curl per 100 MB: {med(user) + med(system):.1f} ms CPU "
      f"(user {med(user):.1f}, system {med(system):.1f})")
EOF
}

for spec in "$@"; do
    bin=${spec##*=} env=()
    [[ $spec == *=* ]] && env=("${spec%=*}")
    scripts/netns up "$ns" >/dev/null
    ip netns exec "$ns" env RUST_LOG=info,paf::access=off "${env[@]}" taskset -c 1 "$bin" run \
        --tap paf0 --test-routes --workers 1 --max-body 1000000000 >"$work/paf.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        ip netns exec "$ns" curl -s -m 1 -o /dev/null http://198.18.0.2/bench && break
        sleep 0.1
    done
    printf '%-40s %s\n' "${env[*]:-} $bin" "$(client "$ns" http://198.18.0.2)"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    scripts/netns down "$ns" >/dev/null
done

ip netns add "$cli"
ip netns add "$srv"
ip link add name bench0 netns "$cli" type veth peer name bench0 netns "$srv"
ip -n "$cli" addr add 198.18.2.1/24 dev bench0
ip -n "$srv" addr add 198.18.2.2/24 dev bench0
for n in "$cli" "$srv"; do
    ip -n "$n" link set lo up
    ip -n "$n" link set bench0 up
done
ip netns exec "$cli" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
ip netns exec "$srv" sysctl -q -w net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=4096
mkdir "$work/tmp"
cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 16384; }
worker_rlimit_nofile 16384;
http {
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path $work/tmp;
    server {
        listen 198.18.2.2:80;
        location = /drop { client_max_body_size 0; return 200 "ok\n"; }
        location = /bench { return 200 "hello world\n"; }
    }
}
EOF
ip netns exec "$srv" taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" &
sleep 1
printf '%-40s %s\n' nginx "$(client "$cli" http://198.18.2.2)"
