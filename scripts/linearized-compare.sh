#!/usr/bin/env bash
# Runs every scenario pair of scenarios/linearized/ (the DAG room and the Linearized Matrix
# room under the same workload and faults) with one seed and prints `mxsim compare` for
# each pair: the tables of docs/linearized.md.
#
#   scripts/linearized-compare.sh [SEED]        (default seed 1)
#
# MXSIM names the binary (default target/release/mxsim; build it with
# `cargo build --release`). Runs and comparisons go under target/linearized/.
set -euo pipefail
seed=${1:-1}
mxsim=${MXSIM:-target/release/mxsim}
out=target/linearized
mkdir -p "$out"
for dag in scenarios/linearized/*-dag.toml; do
  pair=$(basename "$dag" -dag.toml)
  for kind in dag linear; do
    "$mxsim" run "scenarios/linearized/$pair-$kind.toml" --seed "$seed" --quiet \
      --out "$out/$pair-$kind" > /dev/null || {
      echo "$pair-$kind seed $seed failed: mxsim run scenarios/linearized/$pair-$kind.toml --seed $seed" >&2
      exit 1
    }
  done
  echo "### $pair (seed $seed)"
  echo
  "$mxsim" compare "$out/$pair-dag" "$out/$pair-linear" --out "$out/$pair-compare"
  echo
done
