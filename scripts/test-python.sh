#!/usr/bin/env bash
# percept from Python: builds the extension (python/, PyO3 + maturin, abi3) into a venv under
# the target dir, and runs python/tests against the `percept` CLI built by cargo. Idempotent:
# the venv and the build are reused. Needs network access to PyPI on the first run only.
#   scripts/test-python.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
venv=$target/python-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# maturin's build backend runs the `maturin` command: the venv's, found on PATH.
export PATH=$venv/bin:$PATH
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.7,<2" "numpy>=1.21" pytest
# The CLI the tests compare against.
cargo build --release -p percept --bin percept
export PERCEPT_BIN=$target/release/percept
# The extension: `pip install ./python` (a release build by maturin, in the shared target dir),
# with the venv's maturin rather than a fresh download each run.
"$venv/bin/python" -m pip install --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps ./python
# The tests, then the notebook-style example.
"$venv/bin/python" -m pytest -q python/tests "$@"
"$venv/bin/python" python/examples/demo_fit.py "$target/python-demo"
