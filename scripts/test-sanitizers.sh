#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer (g++, build-asan/) and runs
# the CTest suite there (all but the timing-bound `perf` label). Arguments go to ctest (-R tst_rules).
#
# Every ASan/LSan report, also from the children that kernel tests fork and exec, is written to one
# directory (log_path) instead of a stderr that a test may capture or close. UBSan ignores
# log_path when g++ links it beside ASan, so its reports go to stderr, which CTest keeps in
# Testing/Temporary/LastTest.log for passing tests too. The script prints every report at the end
# and fails if there is any, even when the test that caused it passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
"$root/scripts/install-deps.sh"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREDIRECT_WERROR=ON \
  -DREDIRECT_SANITIZE=address,undefined ${REDIRECT_CMAKE_ARGS:-} >/dev/null
cmake --build build-asan -j"$(nproc)"

reports=$(mktemp -d /tmp/redirect-sanitizers.XXXXXX)
trap 'rm -rf "$reports"' EXIT
# Tests run some children as nobody: they may create reports here but not list or touch others'.
chmod 1733 "$reports"

# halt_on_error: the first error ends the process (a non-zero exit the test sees).
# detect_leaks=1: LSan works as root here; leaks inside uninstrumented system libraries that we
# cannot fix are suppressed one by one, with the reason, in tests/lsan.supp.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:print_stacktrace=1:log_path=$reports/asan"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

# Every test but the `perf` label: those bound timings calibrated for the optimised,
# uninstrumented build (tst_flow_model_load), which ASan slows two to three times.
status=0
(cd build-asan && ctest --output-on-failure --timeout 900 -LE perf "$@") || status=$?

found=0
for report in "$reports"/*; do
  [ -e "$report" ] || continue
  found=$((found + 1))
  echo "==== sanitizer report $(basename "$report")"
  cat "$report"
done
if grep -q "runtime error:" build-asan/Testing/Temporary/LastTest.log 2>/dev/null; then
  found=$((found + 1))
  echo "==== UBSan reports in the test output"
  grep -n -A 12 "runtime error:" build-asan/Testing/Temporary/LastTest.log
fi
if [ "$found" -gt 0 ]; then
  echo "test-sanitizers: $found sanitizer report(s) above" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
