#!/usr/bin/env bash
# Installs what percept's tests need on a fresh Debian machine: QEMU for the Cortex-M4
# firmware test, Mesa's lavapipe Vulkan driver for the GPU tests (on a machine without a GPU;
# bookworm-backports' Mesa 25 on Debian bookworm, the distribution's own with PERCEPT_MESA=stable:
# scripts/install-mesa.sh),
# C and C++ compilers (the C header test, libFuzzer for the fuzzing smoke run), and the
# thumbv7em-none-eabihf Rust target. Safe to run
# again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v qemu-system-arm >/dev/null 2>&1 || need+=(qemu-system-arm)
command -v nm >/dev/null 2>&1 || need+=(binutils)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v c++ >/dev/null 2>&1 || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  ./scripts/apt-install.sh "${need[@]}"
fi
./scripts/install-mesa.sh

if ! cargo clippy --version >/dev/null 2>&1; then
  echo "setup: adding clippy"
  rustup component add clippy
fi

if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
  echo "setup: adding the thumbv7em-none-eabihf target"
  rustup target add thumbv7em-none-eabihf
fi
