#!/bin/sh
# Instruction counts (callgrind) of `mxsim resolve` and of ruma-state-res on the same input
# files: end to end (the whole process: read, parse, index, resolve, print) and resolution
# only (`resolve_e2e count`, counting only `measured_*`). Deterministic, unlike timings on a
# shared machine. See docs/performance.md.
#
# Usage: benches/resolve_count.sh FILE... (files written by `resolve_e2e write`).
set -eu
mxsim=${MXSIM:-target/release/mxsim}
e2e=$(ls -t target/release/deps/resolve_e2e-* | grep -v '\.d$' | head -n 1)
# `mxsim resolve` replaces its process with `mxsim-resolve` (docs/cli.md): the replacing
# image is traced (--trace-children), and the counts callgrind prints are summed. It prints
# none for the image that is replaced, so the part of `mxsim` before the handover is not
# counted (at most the 0.69 M instructions of `mxsim --version`).
count() {
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        sed -n 's/.*Collected : //p' | awk '{ sum += $1 } END { printf "%.0f\n", sum }'
}
printf 'file\tmxsim_e2e\truma_e2e\tratio\tmxsim_resolve\truma_resolve\tratio\n'
for file in "$@"; do
    me=$(count "$mxsim" resolve "$file")
    re=$(count "$e2e" ruma "$file")
    mr=$(count --toggle-collect='resolve_e2e::measured_*' "$e2e" count mxsim "$file" 1)
    rr=$(count --toggle-collect='resolve_e2e::measured_*' "$e2e" count ruma "$file" 1)
    awk -v f="$(basename "$file")" -v me="$me" -v re="$re" -v mr="$mr" -v rr="$rr" \
        'BEGIN { printf "%s\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\t%.2f\n", f, me, re, re / me, mr, rr, rr / mr }'
done
