#!/usr/bin/env bash
# Whether two builds write the same files for every curated scenario (docs/performance.md):
# a change meant to alter only the work done must leave every output byte as it was.
#
#   benches/same_outputs.sh OLD_MXSIM NEW_MXSIM [SEED]     (SEED defaults to 1)
#
# Runs each file of scenarios/, scenarios/linearized/ and scenarios/regressions/ with both
# binaries (`run FILE --seed SEED --out DIR --quiet`) and compares the exit codes and every
# file written (summary, trace, events, keys, reports). The trace header's `mxsim_build`
# member, which names the build, is left out of the comparison as it is of the trace hash.
# Prints each differing file and a count; exits 1 if any run differs.
set -u
old=$1
new=$2
seed=${3:-1}
runs=0
differing=0
for file in scenarios/*.toml scenarios/linearized/*.toml scenarios/regressions/*.toml; do
  [ -f "$file" ] || continue
  a=$(mktemp -d)
  b=$(mktemp -d)
  "$old" run "$file" --seed "$seed" --out "$a" --quiet >/dev/null 2>&1
  code_a=$?
  "$new" run "$file" --seed "$seed" --out "$b" --quiet >/dev/null 2>&1
  code_b=$?
  for dir in "$a" "$b"; do
    [ -f "$dir/trace.jsonl" ] && sed -i '1s/"mxsim_build":"[^"]*",//' "$dir/trace.jsonl"
  done
  runs=$((runs + 1))
  if [ "$code_a" != "$code_b" ] || ! diff -rq "$a" "$b" >/dev/null; then
    differing=$((differing + 1))
    echo "differs: $file (exit codes $code_a, $code_b)"
    diff -rq "$a" "$b" | head -n 5
  fi
  rm -rf "$a" "$b"
done
echo "runs=$runs differing=$differing seed=$seed"
[ "$differing" -eq 0 ]
