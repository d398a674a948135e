#!/usr/bin/env bash
# The README's first command: builds percept, makes sure there is a GPU adapter to run on (on a
# machine without one, installs Mesa's CPU Vulkan driver, lavapipe, and says so), then runs the
# demo on the shipped files. Arguments are passed to `percept demo` (e.g. --force).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p percept
run() { cargo run -q --release -p percept -- "$@"; }
if ! run gpu >/dev/null 2>&1; then
  echo "demo: no GPU adapter found; installing Mesa's CPU Vulkan driver (scripts/install-mesa.sh)"
  ./scripts/install-mesa.sh
  run gpu
fi
run demo "$@"
