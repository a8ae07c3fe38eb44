#!/bin/sh
# Instruction counts (cachegrind) of whole `mxsim run`s of the scale scenarios, per build:
# deterministic, unlike CPU times on a shared machine, so that a change of a few percent
# shows. SHA-256 runs in software under valgrind (no SHA extensions), so its share of the
# counts is larger than of the CPU time. See docs/performance.md, "Simulation".
#
# Usage: benches/sim_count.sh N BIN...   (N: the server count of target/perf/bigN.toml,
# written by `WRITE_ONLY=1 benches/sim_scale.sh N`; BIN: mxsim binaries to compare.)
# Prints, per binary: instructions, deliveries, instructions per delivery, trace hash.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 N BIN..." >&2; exit 2; }
n=$1
shift
scenario=target/perf/big$n.toml
[ -f "$scenario" ] || WRITE_ONLY=1 benches/sim_scale.sh "$n" >/dev/null
printf 'binary\tinstructions\tdeliveries\tper_delivery\ttrace\n'
for bin in "$@"; do
    out=$(mktemp -d)
    count=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$bin" run "$scenario" --seed 1 --out "$out" --quiet 2>&1 >/dev/null |
        sed -n 's/.*I *refs: *//p' | tr -d ',')
    python3 - "$bin" "$count" "$out/summary.json" <<'PY'
import json, sys
bin, count, path = sys.argv[1:]
summary = json.load(open(path))
d = summary["metrics"]["messages_delivered"]
print(f"{bin}\t{count}\t{d}\t{int(count) // d}\t{summary['trace_hash'][:16]}")
PY
    rm -rf "$out"
done
