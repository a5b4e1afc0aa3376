#!/usr/bin/env bash
# libFuzzer harnesses of tests/fuzz, built with clang (ASan+UBSan+coverage) into build-fuzz/.
#
#   ./scripts/fuzz.sh                  replay: run every harness once over each file of its corpus
#                                      (tests/fuzz/corpus/<harness>/); fails on any crash (CI)
#   ./scripts/fuzz.sh --run SECONDS    fuzz each harness that long; new inputs go to
#                                      build-fuzz/found/<harness>/, crashes to build-fuzz/crashes/
#   ./scripts/fuzz.sh --merge          add the found inputs that raise coverage to the corpus
#
# Harness names after the options pick some, e.g. ./scripts/fuzz.sh --run 60 fuzz_rules.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=replay
seconds=0
case "${1:-}" in
  --run) mode=run; seconds=${2:?"--run needs a number of seconds"}; shift 2 ;;
  --merge) mode=merge; shift ;;
esac
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_rules fuzz_flow_filter fuzz_sio_decode fuzz_sio_set)

./scripts/install-deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DREDIRECT_WERROR=ON -DREDIRECT_FUZZ=ON ${REDIRECT_CMAKE_ARGS:-} >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${harnesses[@]}"

# Reports with file:line; every UBSan finding is fatal (also compiled -fno-sanitize-recover).
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

status=0
for h in "${harnesses[@]}"; do
  corpus=tests/fuzz/corpus/$h
  case $mode in
    replay)
      # Files, not the directory: libFuzzer then only runs them and never writes into the corpus.
      mapfile -t inputs < <(find "$corpus" -type f | sort)
      if [ ${#inputs[@]} -eq 0 ]; then
        echo "fuzz: $h: empty corpus $corpus" >&2
        status=1
        continue
      fi
      if build-fuzz/bin/"$h" "${inputs[@]}" >"build-fuzz/$h.replay.log" 2>&1; then
        echo "fuzz: $h: ${#inputs[@]} inputs, no crash"
      else
        cat "build-fuzz/$h.replay.log" >&2
        echo "fuzz: $h: FAILED on its corpus (log above)" >&2
        status=1
      fi
      ;;
    run)
      mkdir -p "build-fuzz/found/$h" "build-fuzz/crashes/$h"
      if build-fuzz/bin/"$h" -max_total_time="$seconds" -print_final_stats=1 \
          -artifact_prefix="build-fuzz/crashes/$h/" "build-fuzz/found/$h" "$corpus" \
          >"build-fuzz/$h.run.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/$h.run.log")
        echo "fuzz: $h: $runs executions in ${seconds} s, no crash"
      else
        tail -n 60 "build-fuzz/$h.run.log" >&2
        echo "fuzz: $h: crash, input in build-fuzz/crashes/$h/ (minimise with -minimize_crash=1)" >&2
        status=1
      fi
      ;;
    merge)
      mkdir -p "build-fuzz/found/$h"
      build-fuzz/bin/"$h" -merge=1 "$corpus" "build-fuzz/found/$h" >"build-fuzz/$h.merge.log" 2>&1 || {
        cat "build-fuzz/$h.merge.log" >&2
        status=1
        continue
      }
      echo "fuzz: $h: corpus now $(find "$corpus" -type f | wc -l) files"
      ;;
  esac
done
exit "$status"
