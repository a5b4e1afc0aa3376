#!/usr/bin/env bash
# Builds and runs the console. Arguments go to build/bin/redirect-console,
# e.g. --demo for a self-contained sandbox with live traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh >/dev/null
exec build/bin/redirect-console "$@"
