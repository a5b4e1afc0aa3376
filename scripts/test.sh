#!/usr/bin/env bash
# Builds everything with warnings as errors and runs every test (as root: the
# kernel tests load the callout into private sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."
REDIRECT_CMAKE_ARGS="-DREDIRECT_WERROR=ON ${REDIRECT_CMAKE_ARGS:-}" ./scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 "$@"
