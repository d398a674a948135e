#!/usr/bin/env bash
# TAESD's forward now against an earlier commit's, on this machine, in turns (issue 18's "2x
# faster than now" is measured against the commit it was filed at, 6adc4d7, whose default was f32
# weights on Debian's Mesa 22.3). Builds COMMIT in a git worktree under $TMPDIR and the working
# tree, each with tests/then-now/taesd_forward.rs as an example (the working tree's host/Cargo.toml
# declares it; the earlier commit gets a copy in host/examples/), and runs ROUNDS rounds of:
# then (f32 weights), now (f16 weights, today's default), now (f32 weights); with
# MESA_DIRS="DIR ..." (folders made by scripts/mesa-backports-private.sh, each with an env.sh)
# every run also once on each of those Mesas. One line per run: best of REPS per forward.
# The worktree and COMMIT's build (target/then-COMMIT) stay for the next run; `git worktree
# remove $TMPDIR/percept-then-COMMIT` removes the worktree.
#   scripts/bench-taesd-since.sh [COMMIT [ROUNDS [REPS]]]
set -euo pipefail
cd "$(dirname "$0")/.."
commit="${1:-6adc4d7}"
rounds="${2:-2}"
reps="${3:-3}"
usage="usage: scripts/bench-taesd-since.sh [COMMIT [ROUNDS [REPS]]] (ROUNDS and REPS positive integers)"
[[ "$rounds" =~ ^[1-9][0-9]*$ && "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
git rev-parse --verify -q "$commit^{commit}" >/dev/null || { echo "bench-taesd-since: $commit is not a commit here" >&2; exit 2; }
now="$(pwd)"
then_tree="${TMPDIR:-/tmp}/percept-then-$(git rev-parse --short "$commit")"
target="${CARGO_TARGET_DIR:-$now/target}"

git worktree prune
[ -d "$then_tree" ] || git worktree add --detach "$then_tree" "$commit" >/dev/null
build() { # tree, target folder, binary copy (the working tree declares the example itself)
  if [ "$1" != "$now" ]; then
    mkdir -p "$1/host/examples"
    cp tests/then-now/taesd_forward.rs "$1/host/examples/taesd_forward.rs"
  fi
  (cd "$1" && CARGO_TARGET_DIR="$2" cargo build --release -q -p percept --example taesd_forward)
  cp "$2/release/examples/taesd_forward" "$3"
}
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
echo "building $commit in $then_tree and the working tree ($(git rev-parse --short HEAD))"
build "$then_tree" "$target/then-$commit" "$bin/then"
build "$now" "$target" "$bin/now"

mesas=("system" ${MESA_DIRS:-})
run() { # mesa, label, binary, dtype, tree
  if [ "$1" = system ]; then
    (cd "$5" && "$3" "$4" "$reps")
  else
    # (Mesa 22.3 complains about XDG_RUNTIME_DIR on every start; harmless here)
    (. "$1/env.sh" && cd "$5" && "$3" "$4" "$reps") 2> >(grep -v XDG_RUNTIME_DIR >&2)
  fi | sed "s|^|$2 |"
}
for r in $(seq "$rounds"); do
  for m in "${mesas[@]}"; do
    run "$m" "round $r, then ($commit)," "$bin/then" f32 "$then_tree"
    run "$m" "round $r, now," "$bin/now" f16 "$now"
    run "$m" "round $r, now," "$bin/now" f32 "$now"
  done
done
