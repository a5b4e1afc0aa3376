#!/usr/bin/env bash
# Redirect Console benchmarks: one command, one table of ratios against
# baselines measured in the same run. Never a pass/fail timing test.
#
#   tests/bench/run_bench.sh [--udp-only] [SECONDS_PER_RUN] [RUNS]   (as root; defaults 5 and 5)
#
# Everything runs in a private network namespace (loopback only) and a private
# child cgroup. RUNS times, interleaved (run 1 of every case, then run 2, ...)
# so that drift hits every case alike: iperf3 throughput with 1 and 64 streams,
# wrk new-connection rate (Connection: close) with 32 and 256 connections, and
# connect() to first response byte over 20,000 sequential rounds (bench_latency),
# for direct, haproxy, socat and the engine cases below. Printed per case: the
# median over runs and the spread [min-max] of each value and of each ratio, a
# ratio being taken against the same run's baseline. Then once: the callout's
# per-connect() cost; the service's resident memory with 10,000 concurrent idle
# flows; the service's flow stream at 2,000 new connections/s (a flow's end to
# its row in a console's model, and the service's CPU per attached console, 1
# and 10 consoles); the console's flow table: tick gaps with 100,000 rows and
# 2,000 new flows/s vs idle; and the service's flow history: CPU at 5,000 ended
# flows/s, one hour out of 1,000,000 flows.
# UDP (issue 11), in the same interleaved runs: iperf3 -u with 1,200-byte datagrams sent unpaced,
# direct and through one redirector (a udp-only rule: iperf3's control connection to the same port
# goes direct), datagrams/s the server received and the ratio per run; then each run sends at half
# the rate the redirector reached and prints the loss, through it and direct at that same rate.
# A socat UDP relay is the user-space baseline. For each relay, and for the receiving iperf3
# server, the CPU time (utime + stime) per datagram received: it moves far less with the
# machine's load than the rates do, and says what a relay costs per datagram.
# Then once, the callout's per-sendto() cost on unconnected UDP sockets no rule matches
# (bench_sendmsg). --udp-only runs the UDP cases alone.
set -euo pipefail
if [ "${1:-}" = --udp-only ]; then
  export REDIRECT_BENCH_UDP_ONLY=1
  shift
fi
udp_only=${REDIRECT_BENCH_UDP_ONLY:-}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-5} runs=${2:-5}
case "$secs$runs" in ''|*[!0-9]*) echo "usage: $0 [--udp-only] [SECONDS_PER_RUN >= 1] [RUNS >= 1]" >&2; exit 2;; esac
if [ "$secs" -lt 1 ] || [ "$runs" -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 [--udp-only] [SECONDS_PER_RUN >= 1] [RUNS >= 1]" >&2; exit 2
fi

# The engine cases, one line each: label | chained redirectors | extra service arguments
# (split at spaces). Every case runs every metric in every run, against that run's baselines.
engine_cases=(
  "1 redirector|1|"
  "chain of 2 redirectors|2|"
  "chain of 2, in-process off|2|--in-process-chains off"
)
LATENCY_ROUNDS=20000   # sequential rounds per case and run, so that p99 rests on 200 samples
HAPROXY_MAXCONN=2048   # 8 x the most concurrent connections a case opens (wrk's 256)
UDP_LEN=1200           # iperf3 -u datagram payload, bytes

if [ -z "${REDIRECT_BENCH_INNER:-}" ]; then
  if [ -n "$udp_only" ] && [ -d "$top/build" ]; then
    cmake --build "$top/build" --target redirect-console redirect-consoled bench_sendmsg >/dev/null  # all the UDP cases run
  else
    "$top/scripts/build.sh" >/dev/null
  fi
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
pids=()     # servers that live for the whole run
proxies=()  # the current case's haproxy or socat, the memory case's holder
console=
cleanup() {
  # The service too (a run that failed half-way): wait would otherwise wait for it for ever.
  for p in "${pids[@]}" $console; do kill "$p" 2>/dev/null || true; done
  [ ${#proxies[@]} -gt 0 ] && kill_tree "${proxies[@]}"
  wait 2>/dev/null || true
  echo $$ > "$cgroot/cgroup.procs" 2>/dev/null || true
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
# haproxy takes two descriptors per connection; wrk's 256 connections and the relays are well within.
need=$(( 2 * HAPROXY_MAXCONN + 1000 ))
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "descriptor limit $(ulimit -n) is below the $need this run needs (haproxy maxconn $HAPROXY_MAXCONN)" >&2
  exit 1
fi

listening() {  # port... -> waits up to 10 s until each port has a listener
  local p
  for p in "$@"; do
    for _ in $(seq 200); do [ -n "$(ss -Hltn "sport = :$p")" ] && break; sleep 0.05; done
    [ -n "$(ss -Hltn "sport = :$p")" ] || { echo "nothing listens on port $p after 10 s" >&2; exit 1; }
  done
}

IPERF=5201 HTTP=8000 HOLD=9000
iperf3 -s -p $IPERF > /dev/null 2>&1 & pids+=($!)
iperf_server=$!
HZ=$(getconf CLK_TCK)
if [ -z "$udp_only" ]; then
  "$bin/bench_server" $HTTP http > "$work/http.out" & pids+=($!)
  "$bin/bench_server" $HOLD hold > "$work/hold.out" & pids+=($!)
  listening $HTTP $HOLD
fi
listening $IPERF

cat > "$work/haproxy.cfg" <<EOF
global
  maxconn $HAPROXY_MAXCONN
defaults
  mode tcp
  maxconn $HAPROXY_MAXCONN
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

iperf() {  # iperf3 client arguments... -> its JSON report
  local json
  for _ in 1 2 3 4 5; do
    # The server may still be ending the previous test (seen once after a test through haproxy):
    # it then answers "busy" at once; try again, up to 5 times a second apart.
    json=$(iperf3 -c 127.0.0.1 -t "$secs" -J "$@" 2>/dev/null) || true
    grep -q 'server is busy' <<< "$json" || break
    sleep 1
  done
  printf '%s' "$json"
}
iperf_value() {  # label expression -> the expression of the report's "end" (e) read from stdin;
  # nothing, and the reason on stderr, if iperf3 failed
  python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)
except ValueError:
    r = {"error": "no result"}
if "error" in r:
    print("iperf3 %s: %s" % (sys.argv[1], r["error"]), file=sys.stderr)
else:
    e = r["end"]
    print(eval(sys.argv[2]))' "$1" "$2"
}
throughput() {  # port streams -> Gbit/s
  iperf -p "$1" -P "$2" | iperf_value "-P $2" '"%.3f" % (e["sum_received"]["bits_per_second"] / 1e9)'
}
rate() {  # port connections -> requests/s; socket errors go to the notes under the table
  local out
  out=$(wrk -t1 -c"$2" -d"${secs}s" -H "Connection: close" "http://127.0.0.1:$1/" 2>&1) || true
  awk '/Requests\/sec/ {printf "%.0f", $2}' <<< "$out"
  awk -v c="$2" '/Socket errors|Non-2xx/ {print "wrk -c" c ": " $0}' <<< "$out" >&2
  grep -q 'Requests/sec' <<< "$out" || echo "wrk -c$2 gave no rate: $out" >&2
}
record() {  # run case metric value
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$work/results.tsv"
}
measure() {  # run case iperf-port http-port with-latency; failures' reasons go to the notes
  local r=$1 c=$2 out err=$work/err
  : > "$err"
  # Latency first, on a relay that is not still digesting the load of the cases before it.
  if [ "$5" = yes ]; then
    if out=$("$bin/bench_latency" "$4" "$LATENCY_ROUNDS" 2>&1); then
      record "$r" "$c" p50 "$(sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<< "$out")"
      record "$r" "$c" p99 "$(sed -n 's/.*p99_us=\([0-9.]*\).*/\1/p' <<< "$out")"
    else
      echo "$out" >> "$err"
    fi
  fi
  record "$r" "$c" tp1 "$(throughput "$3" 1 2>> "$err")"
  record "$r" "$c" tp64 "$(throughput "$3" 64 2>> "$err")"
  record "$r" "$c" rps32 "$(rate "$4" 32 2>> "$err")"
  record "$r" "$c" rps256 "$(rate "$4" 256 2>> "$err")"
  # Progress, and the raw numbers behind the table's medians; then what went wrong, if anything.
  awk -F '\t' -v r="$r" -v c="$c" '$1 == r && $2 == c {printf " %s=%s", $3, $4} END {print ""}' \
    "$work/results.tsv" >&2
  awk -v p="run $r, $c: " '{print p $0}' "$err" | tee -a "$work/notes" >&2
}
udp_rate() {  # port bitrate (0: unpaced) -> "datagrams/s lost% datagrams" as the server received them
  # (before iperf3 3.12 "sum" is the receiver's)
  iperf -p "$1" -u -l $UDP_LEN -b "$2" | iperf_value "-u -b $2" \
    '"%.0f %.3f %d" % (lambda s, n: (n / s["seconds"], s["lost_percent"], n))(e.get("sum_received", e["sum"]), e.get("sum_received", e["sum"])["packets"] - e.get("sum_received", e["sum"])["lost_packets"])'
}
tree_ticks() {  # pid -> CPU clock ticks (user + system) of it and its children, live or reaped
  local p t c
  t=$(awk '{print $16 + $17}' "/proc/$1/stat" 2>/dev/null) || t=0
  for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    c=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || c=0
    t=$(( t + ${c:-0} ))
  done
  echo "$t"
}
cpu_us() {  # ticks-before ticks-after datagrams -> CPU microseconds per datagram
  python3 -c "import sys; n = $3; print('%.2f' % (($2 - $1) / $HZ * 1e6 / n) if n else '')"
}
measure_udp() {  # run case port relay-pid: datagrams/s unpaced and the CPU each took, the relay's
  # (its process and children) and the receiving iperf3 server's; through our redirector also the
  # loss at half that rate, through it and direct
  local r=$1 c=$2 port=$3 relay=${4:-} out err=$work/err half r0=0 r1=0 s0 s1
  : > "$err"
  s0=$(tree_ticks "$iperf_server"); [ -n "$relay" ] && r0=$(tree_ticks "$relay")
  out=$(udp_rate "$port" 0 2>> "$err")
  s1=$(tree_ticks "$iperf_server"); [ -n "$relay" ] && r1=$(tree_ticks "$relay")
  record "$r" "$c" udp_dps "$(cut -d' ' -f1 <<< "$out")"
  if [ -n "$out" ]; then
    record "$r" "$c" udp_server_us "$(cpu_us "$s0" "$s1" "${out##* }")"
    [ -n "$relay" ] && record "$r" "$c" udp_relay_us "$(cpu_us "$r0" "$r1" "${out##* }")"
  fi
  if [ "$c" = "udp 1 redirector" ]; then
    half=
    if [ -n "$out" ]; then
      half=$(( ${out%% *} * UDP_LEN * 8 / 2 ))
      record "$r" "$c" udp_half_dps "$(( ${out%% *} / 2 ))"
      out=$(udp_rate "$port" "$half" 2>> "$err")
      record "$r" "$c" udp_loss "$(cut -d' ' -f2 <<< "$out")"
    fi
    console_stop
    if [ -n "$half" ]; then
      # The same rate without the redirector: the loss that is iperf3's own, not the relay's.
      out=$(udp_rate "$port" "$half" 2>> "$err")
      record "$r" "udp direct" udp_loss "$(cut -d' ' -f2 <<< "$out")"
    fi
  fi
  awk -F '\t' -v r="$r" -v c="$c" '$1 == r && $2 == c {printf " %s=%s", $3, $4} END {print ""}' \
    "$work/results.tsv" >&2
  awk -v p="run $r, $c: " '{print p $0}' "$err" | tee -a "$work/notes" >&2
}
rules() {  # n redirectors, each matching the given ports, in order
  local n=$1 ports=$2 reds="" rs="" i
  for i in $(seq 1 "$n"); do
    reds+="${reds:+,}{\"id\":\"r$i\",\"name\":\"R$i\"}"
    rs+="${rs:+,}{\"id\":\"rule$i\",\"action\":\"redirect\",\"redirector\":\"r$i\",\"ports\":\"$ports\"}"
  done
  echo "{\"version\":1,\"redirectors\":[$reds],\"rules\":[$rs]}" > "$work/rules$n.json"
}
console_start() {  # n|udp [service arguments...] -> the service with n chained redirectors; $console is its pid
  local n=$1 exe
  shift
  if [ "$n" = udp ]; then  # one redirector for iperf3's datagrams only
    echo "{\"version\":1,\"redirectors\":[{\"id\":\"r1\",\"name\":\"R1\"}],\"rules\":[{\"id\":\"rule1\",\"action\":\"redirect\",\"redirector\":\"r1\",\"protocol\":\"udp\",\"ports\":\"$IPERF\"}]}" \
      > "$work/rulesudp.json"
  else
    rules "$n" "$IPERF,$HTTP,$HOLD"
  fi
  # Emptied here, not only by the child's redirection: the wait below could otherwise read the
  # previous start's "rules applied" before the child has truncated the file.
  : > "$work/console.log"
  "$bin/redirect-console" --headless --rules "$work/rules$n.json" --cgroup "$cg" \
    --instance "bench-$$" --api-socket "$work/api.sock" --audit-log "$work/audit.log" \
    --history "$work/history.sqlite" "$@" 2> "$work/console.log" &
  console=$!
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
  local pid=$console status=0
  console=
  if ! kill -TERM "$pid" 2>/dev/null; then
    wait "$pid" || status=$?
    echo "service exited early (status $status); its log:" >&2; tail -20 "$work/console.log" >&2; exit 1
  fi
  wait "$pid" || true
  # Each start begins with an empty history, so that a growing file does not slow later runs.
  rm -f "$work"/history.sqlite*
}
kill_tree() {  # pid... -> each and its children (socat's per-peer ones) ended, waited for
  local p kids=() _
  for p in "$@"; do kids+=($(cat /proc/"$p"/task/*/children 2>/dev/null)); done
  kill "$@" "${kids[@]}" 2>/dev/null || true; wait "$@" 2>/dev/null || true
  # The children are not this shell's: up to 5 s until they are gone, else the cgroup stays busy.
  local alive
  for _ in $(seq 100); do
    alive=
    for p in "${kids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$p; done
    [ -z "$alive" ] && return; sleep 0.05
  done
}
proxies_stop() {
  [ ${#proxies[@]} -eq 0 ] && return
  kill_tree "${proxies[@]}"
  proxies=()
}

# Socat forks a process per connection: its connect latency measures fork, not a relay; not run.
run_case() {  # run label
  local r=$1 c=$2 spec n extra
  case "$c" in
    direct) measure "$r" "$c" $IPERF $HTTP yes ;;
    "udp direct") measure_udp "$r" "$c" $IPERF ;;
    "udp 1 redirector") console_start udp; measure_udp "$r" "$c" $IPERF "$console" ;;  # it stops the service
    "udp socat")
      # A user-space UDP relay to compare ours with: its child per peer relays (fork), and ends
      # 2 s after its peer's last datagram; iperf3's control connection goes through a TCP socat.
      socat TCP-LISTEN:35201,fork,reuseaddr TCP:127.0.0.1:$IPERF 2>> "$work/socat.log" & proxies+=($!)
      socat -T 2 -b 65536 UDP4-LISTEN:35201,fork,reuseaddr UDP4:127.0.0.1:$IPERF 2>> "$work/socat.log" &
      proxies+=($!)
      listening 35201; measure_udp "$r" "$c" 35201 "$!"; proxies_stop ;;
    haproxy)
      haproxy -f "$work/haproxy.cfg" > "$work/haproxy.out" 2>&1 & proxies+=($!)
      listening 15201 18000; measure "$r" "$c" 15201 18000 yes; proxies_stop ;;
    socat)
      # Its children report every reset iperf3 leaves at the end of a test: kept out of the table.
      socat TCP-LISTEN:25201,fork,reuseaddr TCP:127.0.0.1:$IPERF 2>> "$work/socat.log" & proxies+=($!)
      socat TCP-LISTEN:28000,fork,reuseaddr TCP:127.0.0.1:$HTTP 2>> "$work/socat.log" & proxies+=($!)
      listening 25201 28000; measure "$r" "$c" 25201 28000 no; proxies_stop ;;
    *)
      for spec in "${engine_cases[@]}"; do [ "${spec%%|*}" = "$c" ] && break; done
      IFS='|' read -r _ n extra <<< "$spec"
      # shellcheck disable=SC2086  # the extra arguments are meant to split at spaces
      console_start "$n" $extra
      measure "$r" "$c" $IPERF $HTTP yes
      console_stop ;;
  esac
}

labels=(direct haproxy socat)
table=("direct|0")
for spec in "${engine_cases[@]}"; do
  labels+=("${spec%%|*}"); IFS='|' read -r c n _ <<< "$spec"; table+=("$c|$n")
done
table+=("haproxy|0" "socat|0")
[ -n "$udp_only" ] && { labels=(); table=(); }
labels+=("udp direct" "udp 1 redirector" "udp socat")
for r in $(seq 1 "$runs"); do
  for c in "${labels[@]}"; do
    printf 'run %s of %s, %s:' "$r" "$runs" "$c" >&2
    run_case "$r" "$c"
  done
done

if [ -z "$udp_only" ]; then
# Memory with 10,000 concurrent idle flows through one redirector: two descriptors a flow,
# so fewer when the hard descriptor limit is lower (without CAP_SYS_RESOURCE it cannot rise).
flows=$(( ($(ulimit -Hn) - 100) / 2 )); [ "$flows" -gt 10000 ] && flows=10000
console_start 1
sleep 0.5
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$console/status")
"$bin/bench_hold" $HOLD "$flows" > "$work/hold_client.out" & proxies+=($!)
for _ in $(seq 600); do grep -qs HELD "$work/hold_client.out" && break; sleep 0.1; done
sleep 1
rss_10k=$(awk '/VmRSS/ {print $2}' "/proc/$console/status")
proxies_stop
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
fi

python3 - "$work/results.tsv" "$secs" "$runs" "$(nproc)" "$LATENCY_ROUNDS" "${table[@]}" <<'EOF'
# One table: per case the median over runs and [min-max]; ratios (and added latency) are taken
# per run against that run's baseline, then summarised the same way. The median of an even count
# is the lower middle value, so that every number printed was measured (no mean of percentiles).
import statistics, sys
from collections import defaultdict
path, secs, runs, cpus, rounds = sys.argv[1:6]
cases = [(a.rsplit("|", 1)[0], int(a.rsplit("|", 1)[1])) for a in sys.argv[6:]]
runs = int(runs)
vals = defaultdict(dict)  # (case, metric) -> {run: value}
for line in open(path):
    run, case, metric, value = line.rstrip("\n").split("\t")
    if value:
        vals[(case, metric)][run] = float(value)

def summary(xs, fmt):
    if not xs:
        return "failed"
    xs = sorted(xs)
    s = fmt % statistics.median_low(xs)
    if len(xs) > 1:
        s += " [" + fmt % xs[0] + "-" + fmt % xs[-1] + "]"
    if len(xs) < runs:
        s += " (%d of %d runs)" % (len(xs), runs)
    return s

def per_run(case, base, metric, op):
    a, b = vals[(case, metric)], vals[(base, metric)]
    return [op(a[r], b[r]) for r in a if r in b and b[r]]

def ratio(case, base, metric):
    return "1" if case == base else summary(per_run(case, base, metric, lambda x, y: x / y), "%.2f")

print("\nRedirect Console benchmarks: loopback, %s s per case, %d runs interleaved, %s CPUs" % (secs, runs, cpus))
print("median [min-max] over runs; ratios taken per run against the same run's direct and haproxy")

if vals[("udp 1 redirector", "udp_dps")] or vals[("udp direct", "udp_dps")]:
    print("\n%-26s %-22s %-16s %-20s %s" % ("iperf3 -u, 1200 B, -b 0", "datagrams/s received", "vs direct",
                                            "relay CPU us/dgram", "receiver CPU us/dgram"))
    for case in ("udp direct", "udp 1 redirector", "udp socat"):
        print("  %-24s %-22s %-16s %-20s %s" % (
            case, summary(list(vals[(case, "udp_dps")].values()), "%.0f"), ratio(case, "udp direct", "udp_dps"),
            "-" if case == "udp direct" else summary(list(vals[(case, "udp_relay_us")].values()), "%.2f"),
            summary(list(vals[(case, "udp_server_us")].values()), "%.2f")))
    print("  at half the redirector's rate (%s datagrams/s), loss %%: redirector %s, direct %s" % (
        summary(list(vals[("udp 1 redirector", "udp_half_dps")].values()), "%.0f"),
        summary(list(vals[("udp 1 redirector", "udp_loss")].values()), "%.3f"),
        summary(list(vals[("udp direct", "udp_loss")].values()), "%.3f")))
if not cases:
    sys.exit(0)
for metric, title, unit, fmt in (("tp1", "iperf3, 1 stream", "Gb/s", "%.2f"),
                                 ("tp64", "iperf3, 64 streams", "Gb/s", "%.2f"),
                                 ("rps32", "wrk, 32 connections", "conn/s", "%.0f"),
                                 ("rps256", "wrk, 256 connections", "conn/s", "%.0f")):
    print(("\n%-26s %-22s %-20s %s" % (title, unit, "vs direct", "vs haproxy")).rstrip())
    for case, _ in cases:
        xs = list(vals[(case, metric)].values())
        print("  %-24s %-22s %-20s %s" % (case, summary(xs, fmt), ratio(case, "direct", metric),
                                          ratio(case, "haproxy", metric)))

print("\nconnect() to first response byte, us: %s sequential rounds per case and run (bench_latency);" % rounds)
print("added = the case minus direct in the same run; socat not run (a fork per connection)")
print("  %-24s %-20s %-24s %-20s %s" % ("case", "p50", "p99", "added p50", "added p99"))
for case, hops in cases:
    if not vals[(case, "p50")] and case == "socat":
        continue
    row = [summary(list(vals[(case, m)].values()), "%.1f") for m in ("p50", "p99")]
    if case == "direct":
        row += ["-", "-"]
    else:
        row += [summary(per_run(case, "direct", m, lambda x, y: x - y), "%.1f") for m in ("p50", "p99")]
        if hops == 1:
            row[3] += " (target <= 100)"
    print("  %-24s %-20s %-24s %-20s %s" % (case, *row))
EOF
if [ -s "$work/notes" ]; then echo; echo "notes:"; cat "$work/notes"; fi
if [ -n "$udp_only" ]; then
  echo; "$bin/bench_sendmsg" 20000 5
  printf '\nwhole run: %d min %d s\n' $((SECONDS / 60)) $((SECONDS % 60))
  exit 0
fi
printf '\nservice RSS (redirect-consoled): %.1f MiB idle, %.1f MiB with %d concurrent flows (%.0f bytes/flow)\n' \
  "$(echo "$rss_idle/1024" | bc -l)" "$(echo "$rss_10k/1024" | bc -l)" "$flows" \
  "$(echo "($rss_10k-$rss_idle)*1024/$flows" | bc -l)"
cat "$work/stream.out"
echo
"$bin/bench_connect" 20000 3
echo; "$bin/bench_sendmsg" 20000 5
"$bin/bench_history" "$secs" "$work/bench-history"
QT_QPA_PLATFORM=offscreen "$bin/bench_flow_model" "$secs"
printf '\nwhole run: %d min %d s\n' $((SECONDS / 60)) $((SECONDS % 60))
