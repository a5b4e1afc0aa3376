#!/usr/bin/env bash
# Redirect Console benchmarks: one command, one table of ratios against
# baselines measured in the same run. Never a pass/fail timing test.
#
#   tests/bench/run_bench.sh [SECONDS_PER_RUN]      (as root; default 5)
#
# Everything runs in a private network namespace (loopback only) and a private
# child cgroup: iperf3 single-stream throughput and wrk new-connection rate
# (Connection: close) for direct, haproxy, socat, our engine with one
# redirector and with a chain of two; the callout's per-connect() cost; the
# service's resident memory with 10,000 concurrent idle flows; the service's
# flow stream at 2,000 new connections/s (a flow's end to its row in a console's
# model, and the service's CPU per attached console, 1 and 10 consoles); and the
# console's flow table: tick gaps with 100,000 rows and 2,000 new flows/s vs idle; and the
# service's flow history: CPU at 5,000 ended flows/s, one hour out of 1,000,000 flows.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-5}
case "$secs" in ''|*[!0-9]*) echo "usage: $0 [SECONDS_PER_RUN]" >&2; exit 2;; esac

if [ -z "${REDIRECT_BENCH_INNER:-}" ]; then
  "$top/scripts/build.sh" >/dev/null
  export REDIRECT_BENCH_INNER=1
  exec unshare -n "$0" "$@"
fi

bin=$top/build/bin
work=$(mktemp -d /tmp/redirect-bench-XXXXXX)
ip link set lo up
cgroot=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
cg=$cgroot/redirect-bench-$$
mkdir -p "$cg"
echo $$ > "$cg/cgroup.procs"
pids=()
console=
cleanup() {
  # The service too (a run that failed half-way): wait would otherwise wait for it for ever.
  for p in "${pids[@]}" $console; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo $$ > "$cgroot/cgroup.procs" 2>/dev/null || true
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

IPERF=5201 HTTP=8000 HOLD=9000
"$bin/bench_server" $HTTP http > "$work/http.out" & pids+=($!)
"$bin/bench_server" $HOLD hold > "$work/hold.out" & pids+=($!)
iperf3 -s -p $IPERF > /dev/null 2>&1 & pids+=($!)
sleep 0.5

cat > "$work/haproxy.cfg" <<EOF
global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen iperf
  bind 127.0.0.1:15201
  server s 127.0.0.1:$IPERF
listen http
  bind 127.0.0.1:18000
  server s 127.0.0.1:$HTTP
EOF

throughput() {  # port -> Gbit/s (0 and the reason on stderr if iperf3 failed)
  iperf3 -c 127.0.0.1 -p "$1" -t "$secs" -J 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
if "error" in r:
    print("iperf3: " + r["error"], file=sys.stderr); print("0")
else:
    print("%.2f" % (r["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
rate() {  # port -> requests/s
  wrk -t1 -c32 -d"${secs}s" -H "Connection: close" "http://127.0.0.1:$1/" 2>/dev/null |
    awk '/Requests\/sec/ {printf "%.0f", $2}'
}
rules() {  # n redirectors, each matching the given ports, in order
  local n=$1 ports=$2 reds="" rs="" i
  for i in $(seq 1 "$n"); do
    reds+="${reds:+,}{\"id\":\"r$i\",\"name\":\"R$i\"}"
    rs+="${rs:+,}{\"id\":\"rule$i\",\"action\":\"redirect\",\"redirector\":\"r$i\",\"ports\":\"$ports\"}"
  done
  echo "{\"version\":1,\"redirectors\":[$reds],\"rules\":[$rs]}" > "$work/rules$n.json"
}
console_start() {  # n -> starts the service with n chained redirectors; $console is its pid
  rules "$1" "$IPERF,$HTTP,$HOLD"
  "$bin/redirect-console" --headless --rules "$work/rules$1.json" --cgroup "$cg" \
    --instance "bench-$$" --api-socket "$work/api.sock" --audit-log "$work/audit.log" \
    --history "$work/history.sqlite" 2> "$work/console.log" &
  console=$!
  local exe
  # Up to 30 s: once a start took 10 s to "callout attached" (two cores shared with builds), and
  # the old 5 s left the run waiting for ever in cleanup on the service it had not stopped.
  for _ in $(seq 600); do
    grep -q "rules applied" "$work/console.log" || ! kill -0 "$console" 2>/dev/null && break; sleep 0.05
  done
  if ! grep -q "rules applied" "$work/console.log"; then
    echo "service did not start:"; cat "$work/console.log"; console_stop; exit 1
  fi
  # --headless execs the service in the same process; /proc/PID/comm cannot tell them apart
  # (both names are cut to 15 characters, "redirect-consol"), the executable can.
  exe=$(readlink "/proc/$console/exe")
  [ "${exe##*/}" = redirect-consoled ] || { echo "pid $console runs $exe, not redirect-consoled" >&2; exit 1; }
}
console_stop() {
  local pid=$console
  console=
  if ! kill -TERM "$pid" 2>/dev/null; then
    wait "$pid"; echo "service exited early (status $?); its log:" >&2; tail -20 "$work/console.log" >&2; exit 1
  fi
  wait "$pid" || true
}

declare -A tp rps
tp[direct]=$(throughput $IPERF); rps[direct]=$(rate $HTTP)
haproxy -f "$work/haproxy.cfg" > /dev/null 2>&1 & hp=$!; sleep 0.5
tp[haproxy]=$(throughput 15201); rps[haproxy]=$(rate 18000)
kill "$hp" 2>/dev/null || true; wait "$hp" 2>/dev/null || true
socat TCP-LISTEN:25201,fork,reuseaddr TCP:127.0.0.1:$IPERF & s1=$!
socat TCP-LISTEN:28000,fork,reuseaddr TCP:127.0.0.1:$HTTP & s2=$!
sleep 0.3
tp[socat]=$(throughput 25201); rps[socat]=$(rate 28000)
kill "$s1" "$s2" 2>/dev/null || true; wait "$s1" "$s2" 2>/dev/null || true
for n in 1 2; do
  console_start $n
  tp[chain$n]=$(throughput $IPERF); rps[chain$n]=$(rate $HTTP)
  console_stop
done

# Memory with 10,000 concurrent idle flows through one redirector: two descriptors a flow,
# so fewer when the hard descriptor limit is lower (without CAP_SYS_RESOURCE it cannot rise).
flows=$(( ($(ulimit -Hn) - 100) / 2 )); [ "$flows" -gt 10000 ] && flows=10000
console_start 1
sleep 0.5
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$console/status")
"$bin/bench_hold" $HOLD "$flows" > "$work/hold_client.out" & holder=$!
for _ in $(seq 600); do grep -qs HELD "$work/hold_client.out" && break; sleep 0.1; done
sleep 1
rss_10k=$(awk '/VmRSS/ {print $2}' "/proc/$console/status")
kill "$holder"; wait "$holder" 2>/dev/null || true
console_stop

# The flow stream (issue 8): 2,000 connects/s to HTTP through one redirector, 0, 1 and 10 consoles
# attached to the service's API socket (bench_stream prints the targets next to its numbers).
console_start 1
for _ in $(seq 100); do [ -S "$work/api.sock" ] && break; sleep 0.05; done
if ! "$bin/bench_stream" "$console" "$work/api.sock" $HTTP "$secs" 2000 \
    > "$work/stream.out" 2> "$work/stream.err"; then
  echo "bench_stream failed:" >&2; cat "$work/stream.err" >&2
fi
console_stop

printf '\nRedirect Console benchmarks (loopback, %s s per run, %s CPUs)\n' "$secs" "$(nproc)"
printf '%-26s %12s %9s %14s %9s %12s\n' case "iperf3 Gb/s" "vs direct" "wrk conn/s" "vs direct" "vs haproxy"
for c in direct chain1 chain2 haproxy socat; do
  name=$c; [ $c = chain1 ] && name="1 redirector"; [ $c = chain2 ] && name="chain of 2 redirectors"
  python3 - "$name" "${tp[$c]}" "${tp[direct]}" "${rps[$c]:-0}" "${rps[direct]:-0}" "${rps[haproxy]:-0}" <<'EOF'
import sys
name, t, td, r, rd, rh = sys.argv[1], *map(float, sys.argv[2:])
q = lambda a, b: "%.2f" % (a / b) if b else "-"
print("%-26s %12.2f %9s %14.0f %9s %12s" % (name, t, q(t, td), r, q(r, rd), q(r, rh)))
EOF
done
printf '\nservice RSS (redirect-consoled): %.1f MiB idle, %.1f MiB with %d concurrent flows (%.0f bytes/flow)\n' \
  "$(echo "$rss_idle/1024" | bc -l)" "$(echo "$rss_10k/1024" | bc -l)" "$flows" \
  "$(echo "($rss_10k-$rss_idle)*1024/$flows" | bc -l)"
cat "$work/stream.out"
echo
"$bin/bench_connect" 20000 3
"$bin/bench_history" "$secs" "$work/bench-history"
QT_QPA_PLATFORM=offscreen "$bin/bench_flow_model" "$secs"
