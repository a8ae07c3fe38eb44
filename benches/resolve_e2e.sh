#!/bin/sh
# End-to-end comparison of `mxsim resolve` and ruma-state-res on the same input files:
# CPU seconds (user + system) and peak resident memory of each process, runs interleaved so
# that both sides see the same machine load. See docs/performance.md.
#
# Usage: benches/resolve_e2e.sh FILE... (files written by `resolve_e2e write`).
# Environment: RUNS (default 3) interleaved runs per side.
# `mxsim resolve` replaces its process with `mxsim-resolve` when that lies beside it
# (docs/cli.md): one process, whose CPU time and peak (the kernel keeps the larger of the
# two images' peaks) cover both. MXSIM_RESOLVE_IN_PROCESS=1 measures it without the handover.
set -eu
runs=${RUNS:-3}
mxsim=${MXSIM:-target/release/mxsim}
e2e=$(ls -t target/release/deps/resolve_e2e-* | grep -v '\.d$' | head -n 1)
tmp=${TMPDIR:-/tmp}/resolve-e2e.$$
mkdir -p "$tmp"
printf 'file\tside\trun\tcpu_s\tpeak_rss_kib\n'
for file in "$@"; do
    run=1
    while [ "$run" -le "$runs" ]; do
        /usr/bin/time -f '%U %S %M' -o "$tmp/m" "$mxsim" resolve "$file" > "$tmp/out-mxsim"
        /usr/bin/time -f '%U %S %M' -o "$tmp/r" "$e2e" ruma "$file" > "$tmp/out-ruma"
        cmp -s "$tmp/out-mxsim" "$tmp/out-ruma" || { echo "$file: mxsim and ruma disagree" >&2; exit 1; }
        for side in m r; do
            name=$([ "$side" = m ] && echo mxsim || echo ruma)
            awk -v f="$(basename "$file")" -v s="$name" -v r="$run" \
                '{ printf "%s\t%s\t%d\t%.2f\t%d\n", f, s, r, $1 + $2, $3 }' "$tmp/$side"
        done
        run=$((run + 1))
    done
done
rm -r "$tmp"
