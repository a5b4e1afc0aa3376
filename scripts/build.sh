#!/usr/bin/env bash
# Configures and builds into build/ (binaries in build/bin, libraries in build/lib).
set -euo pipefail
cd "$(dirname "$0")/.."
"$(pwd)/scripts/install-deps.sh"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${REDIRECT_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
