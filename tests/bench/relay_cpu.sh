#!/usr/bin/env bash
# The engine's CPU time per unit of work: µs per relayed connection (wrk -c32, Connection: close)
# and s per GB moved (one iperf3 stream), for one redirector and a chain of two with in-process
# chains on and off. CPU time (utime + stime of the service from /proc/PID/stat) moves much less
# with the machine's load than rates do, so it says what a change to the relay bought even on a
# busy machine. Never a pass/fail test.
#
#   tests/bench/relay_cpu.sh [SECONDS_PER_CASE]      (as root; default 5; after scripts/build.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-5}
case "$secs" in ''|*[!0-9]*|0) echo "usage: $0 [SECONDS_PER_CASE >= 1]" >&2; exit 2;; esac
if [ -z "${REDIRECT_BENCH_INNER:-}" ]; then
  export REDIRECT_BENCH_INNER=1
  exec unshare -n "$0" "$@"
fi

bin=$top/build/bin
work=$(mktemp -d /tmp/redirect-relay-cpu-XXXXXX)
ip link set lo up
cgroot=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
cg=$cgroot/redirect-relay-cpu-$$
mkdir -p "$cg"
echo $$ > "$cg/cgroup.procs"
pids=()
service=
cleanup() {
  for p in "${pids[@]}" $service; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo $$ > "$cgroot/cgroup.procs" 2>/dev/null || true
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

"$bin/bench_server" 8000 http > /dev/null & pids+=($!)
iperf3 -s -p 5201 > /dev/null 2>&1 & pids+=($!)
sleep 0.5
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start() {  # redirectors extra-args...
  local n=$1 reds="" rs="" i
  shift
  for i in $(seq 1 "$n"); do
    reds+="${reds:+,}{\"id\":\"r$i\",\"name\":\"R$i\"}"
    rs+="${rs:+,}{\"id\":\"rule$i\",\"action\":\"redirect\",\"redirector\":\"r$i\",\"ports\":\"5201,8000\"}"
  done
  echo "{\"version\":1,\"redirectors\":[$reds],\"rules\":[$rs]}" > "$work/rules.json"
  : > "$work/service.log"
  "$bin/redirect-console" --headless --rules "$work/rules.json" --cgroup "$cg" --instance "relay-cpu-$$" \
    --api-socket none --audit-log "$work/audit.log" --history off "$@" 2> "$work/service.log" &
  service=$!
  for _ in $(seq 600); do
    grep -q "rules applied" "$work/service.log" && return 0
    kill -0 "$service" 2>/dev/null || break
    sleep 0.05
  done
  echo "service did not start:" >&2; cat "$work/service.log" >&2; exit 1
}
stop() { kill "$service"; wait "$service" 2>/dev/null || true; service=; }

measure() {  # label redirectors extra-args...
  local label=$1 t0 t1 rate gbps
  shift
  start "$@"
  t0=$(ticks "$service")
  rate=$(wrk -t1 -c32 -d"${secs}s" -H "Connection: close" http://127.0.0.1:8000/ 2>/dev/null |
    awk '/Requests\/sec/ {printf "%.0f", $2}')
  t1=$(ticks "$service")
  local conn_us
  conn_us=$(python3 -c "print('%.1f' % (($t1 - $t0) / $hz * 1e6 / max(1, $rate * $secs)))")
  t0=$(ticks "$service")
  gbps=$(iperf3 -c 127.0.0.1 -p 5201 -t "$secs" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))')
  t1=$(ticks "$service")
  stop
  python3 -c "
gb = $gbps * $secs / 8
print('%-30s %9s conn/s %7s us CPU/conn %8s Gb/s %7s s CPU/GB' % ('$label', '$rate', '$conn_us', '$gbps',
      '%.3f' % (($t1 - $t0) / $hz / gb) if gb else '-'))"
}

measure "1 redirector" 1
measure "chain of 2, in-process" 2 --in-process-chains on
measure "chain of 2, over loopback" 2 --in-process-chains off
