#!/bin/sh
# Instruction counts (cachegrind) of whole `mxsim run`s of the scale scenarios, per build:
# deterministic, unlike CPU times on a shared machine, so that a change of a few percent
# shows. Valgrind's CPU has no SHA extensions, so SHA-256 runs in software under it, at
# many times the instructions of a native run (a third of `big100`'s count, mostly the
# trace's hash): the counts are also given without sha2's compression function, which is
# closer to what a native run spends. See docs/performance.md, "Simulation".
#
# Usage: benches/sim_count.sh N BIN...   (N: the server count of target/perf/bigN.toml,
# written by `WRITE_ONLY=1 benches/sim_scale.sh N`; BIN: mxsim binaries to compare.)
# Prints, per binary: instructions, deliveries, instructions per delivery, the same two
# without SHA-256's compression function, and the trace hash.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 N BIN..." >&2; exit 2; }
n=$1
shift
scenario=target/perf/big$n.toml
[ -f "$scenario" ] || WRITE_ONLY=1 benches/sim_scale.sh "$n" >/dev/null
printf 'binary\tinstructions\tdeliveries\tper_delivery\twithout_sha256\tper_delivery\ttrace\n'
for bin in "$@"; do
    out=$(mktemp -d)
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out/cachegrind.out" \
        "$bin" run "$scenario" --seed 1 --out "$out" --quiet >/dev/null 2>&1
    # Per function, self counts: the compression function is a leaf (its helpers inline),
    # listed once per source file its instructions come from.
    cg_annotate --auto=no --threshold=0 "$out/cachegrind.out" >"$out/functions.txt"
    python3 - "$bin" "$out/functions.txt" "$out/summary.json" <<'PY'
import json, re, sys
bin, functions, path = sys.argv[1:]
count = sha = 0
for line in open(functions):
    m = re.match(r"\s*([\d,]+) .*PROGRAM TOTALS", line)
    if m:
        count = int(m.group(1).replace(",", ""))
    m = re.match(r"\s*([\d,]+) \(.*:sha2::sha256::compress256$", line.rstrip())
    if m:
        sha += int(m.group(1).replace(",", ""))
summary = json.load(open(path))
d = summary["metrics"]["messages_delivered"]
rest = count - sha
print(f"{bin}\t{count}\t{d}\t{count // d}\t{rest}\t{rest // d}\t{summary['trace_hash'][:16]}")
PY
    rm -rf "$out"
done
