#!/usr/bin/env python3
"""CPU time of two builds on one scale scenario, in ABBA order (docs/performance.md).

    python3 benches/sim_abba.py N|FILE ROUNDS OLD_MXSIM NEW_MXSIM

Runs `target/perf/bigN.toml` (seed 1; `WRITE_ONLY=1 benches/sim_scale.sh N` writes it), or
the scenario FILE, ROUNDS times in the order OLD, NEW, NEW, OLD, each into a new directory,
and takes each run's user and system CPU time from `wait4` of its process. Prints each
build's median total, fastest run, median user and median system time, and the median and
mean over the rounds of NEW's total over OLD's: a load that changes during the rounds
falls on both builds alike, which single timings on a shared machine do not give.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile


def one(binary, scenario):
    out = tempfile.mkdtemp()
    try:
        args = [binary, "run", scenario, "--seed", "1", "--out", out, "--quiet"]
        child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            sys.exit(f"{binary} run {scenario} failed (wait status {status})")
        return usage.ru_utime, usage.ru_stime
    finally:
        shutil.rmtree(out)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    servers, rounds, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    # A server count names a scale scenario; anything else is a scenario file's path.
    scenario = f"target/perf/big{servers}.toml" if servers.isdigit() else servers
    if not os.path.isfile(scenario):
        if servers.isdigit():
            sys.exit(f"{scenario} is missing: WRITE_ONLY=1 benches/sim_scale.sh {servers}")
        sys.exit(f"{scenario} is missing")
    runs = {old: [], new: []}
    ratios = []
    for _ in range(rounds):
        a1, b1, b2, a2 = one(old, scenario), one(new, scenario), one(new, scenario), one(old, scenario)
        runs[old] += [a1, a2]
        runs[new] += [b1, b2]
        ratios.append((sum(b1) + sum(b2)) / (sum(a1) + sum(a2)))
    for binary in (old, new):
        total = [1000 * (u + s) for u, s in runs[binary]]
        user = [1000 * u for u, _ in runs[binary]]
        system = [1000 * s for _, s in runs[binary]]
        print(
            f"{binary}: median {statistics.median(total):.1f} ms (fastest {min(total):.1f}),"
            f" user {statistics.median(user):.1f}, system {statistics.median(system):.1f}"
        )
    print(
        f"new/old: median {statistics.median(ratios):.4f}, mean {statistics.mean(ratios):.4f}"
        f" over {rounds} rounds"
    )


if __name__ == "__main__":
    main()
