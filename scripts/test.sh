#!/usr/bin/env bash
# percept's tests: installs what they need (scripts/setup.sh), then runs every test of the
# workspace (including the Cortex-M4 firmware under QEMU, the C header and the GPU kernels on
# lavapipe), clippy and rustdoc with warnings as errors, and the Python package's tests
# (scripts/test-python.sh, in a virtual environment it makes itself).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --release "$@"
cargo clippy --workspace --all-targets --release -- -D warnings
# The API documentation builds without broken or private links.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
./scripts/test-python.sh
# A short coverage-guided fuzzing smoke run of the file readers (scripts/fuzz.sh; a few seconds
# per target after its build).
./scripts/fuzz.sh --smoke
