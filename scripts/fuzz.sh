#!/bin/sh
# Coverage-guided fuzzing of percept's file readers with libFuzzer (the libfuzzer-sys crate),
# built with stable rustc: the sanitizer-coverage instrumentation cargo-fuzz uses is passed
# as -C flags, so neither nightly nor cargo-fuzz is needed (only a C++ compiler, which
# libfuzzer-sys uses to build libFuzzer). No AddressSanitizer: the readers are safe Rust, and
# panics, aborts, timeouts and allocations over -malloc_limit_mb are what is looked for.
#
#   scripts/fuzz.sh [--smoke] [SECONDS_PER_TARGET] [TARGET...]
#
# Targets (fuzz/fuzz_targets): npy nifti stimuli image safetensors. Default: 60 s each, one
# at a time. --smoke: 2 s each (about 10 s in all, after the build) for CI. Seeds are made
# in the corpus folder (fuzz/corpus/<target>, not committed) on the first run; crashes land in
# fuzz/artifacts/<target>/. Exit status: non-zero if any target found a crash.
set -eu
cd "$(dirname "$0")/../fuzz"
secs=60
seed=""
# The smoke run is seeded, so CI explores the same inputs every time (a find there is a bug to
# fix, not a coin flip).
if [ "${1:-}" = "--smoke" ]; then secs=2; seed="-seed=1"; shift; fi
if [ -n "${1:-}" ] && [ "$1" -eq "$1" ] 2>/dev/null; then secs=$1; shift; fi
targets=${*:-npy nifti stimuli image safetensors}
host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc macros.
cargo build --release --target "$host" --bins
bin="$CARGO_TARGET_DIR/$host/release"

if [ ! -d corpus ]; then
    cp -r seeds corpus
fi

status=0
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${secs}s"
    if ! "$bin/$t" "corpus/$t" $seed -max_total_time="$secs" -rss_limit_mb=3072 -malloc_limit_mb=2048 \
        -timeout=10 -max_len=65536 -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>"artifacts/$t.log"; then
        status=1
        echo "   crash: see fuzz/artifacts/$t/ and fuzz/artifacts/$t.log"
    fi
    grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE" "artifacts/$t.log" | sed 's/^/   /' || true
done
exit $status
