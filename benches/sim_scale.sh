#!/usr/bin/env bash
# Whole-simulation cost at several server counts (docs/performance.md, "Simulation").
#
#   benches/sim_scale.sh [N ...]          (default: 10 100 300)
#
# For each N, writes target/perf/bigN.toml: N servers in one public room (all joined by
# 30 s), 100 messages from everyone over 60 s, the last tenth of the servers cut off
# for 15 s. Runs it on seed 1 with each binary in MXSIM (space-separated; default
# target/release/mxsim) and prints CPU seconds (user + system), peak resident memory,
# deliveries, events received (each server's decision on each event it did not create,
# the state a join hands it included), bytes sent, CPU microseconds per delivery and per
# event received, and the trace hash. With WRITE_ONLY=1, only writes the scenario files
# (for profiling them by hand). With RUNS=K (default 1), runs each binary K times,
# interleaved, and prints the median CPU time, its range, and the deliveries per CPU
# second at the median: the machines are shared, and one run moves by a third. Then runs
# the bare-transport baseline (BARE, default target/release/examples/bare_transport; build
# it with `cargo build --release --example bare_transport`) with as many nodes and
# messages, BARE_RUNS times (default: RUNS, at most three), and prints the median of its
# deliveries per CPU second.
set -euo pipefail
binaries=${MXSIM:-target/release/mxsim}
bare=${BARE:-target/release/examples/bare_transport}
runs=${RUNS:-1}
# Runs a command with its output discarded; prints its user and system CPU seconds and its
# peak resident memory in KiB, from the kernel's accounting of that one process (`wait4`:
# microseconds, where /usr/bin/time prints hundredths).
cpu_of() {
  python3 -c 'import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, _, r = os.wait4(child.pid, 0)
print(f"{r.ru_utime:.6f} {r.ru_stime:.6f} {r.ru_maxrss}")' "$@"
}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 100 300)
mkdir -p target/perf
for n in "${counts[@]}"; do
  scenario=target/perf/big$n.toml
  cut=$(seq $((n - n / 10 + 1)) "$n" | sed 's/.*/"hs&"/' | paste -sd, -)
  cat >"$scenario" <<TOML
name = "big$n"
description = "$n servers in one public room, 100 messages over 60 s, the last tenth cut off for 15 s."

[[server_group]]
prefix = "hs"
count = $n
users = ["u"]

[network]
default_policy = { latency = { kind = "uniform", delay_ms_min = 5, delay_ms_max = 80 } }

[[room]]
label = "big"
creator = "@u:hs1"
public = true
members = ["*"]
member_stagger_ms = $((30000 / n))

[[workload]]
room = "big"
start_ms = 35_000
end_ms = 95_000
interval_ms = 600
mix = { message = 1 }

[[fault]]
type = "partition"
start_ms = 45_000
end_ms = 60_000
groups = [[$cut]]

[[expect]]
room = "big"
converged_by_ms = 200_000
TOML
  [ -z "${WRITE_ONLY:-}" ] || continue
  # RUNS interleaved runs of each binary; the row prints the median CPU time (and the
  # fastest and slowest), and the deliveries per CPU second at the median.
  declare -A cpus=()
  for run in $(seq 1 "$runs"); do
    for bin in $binaries; do
      out=target/perf/big$n-$(echo "$bin" | tr '/' '_')
      cpu_of "$bin" run "$scenario" --seed 1 --out "$out" --quiet >"$out.time"
      read -r user sys rss <"$out.time"
      cpus[$bin]="${cpus[$bin]:-} $user+$sys:$rss"
    done
  done
  for bin in $binaries; do
    out=target/perf/big$n-$(echo "$bin" | tr '/' '_')
    python3 - "$bin" "$n" "$out/summary.json" ${cpus[$bin]} <<'PY'
import json, statistics, sys
bin, n, path, *runs = sys.argv[1:]
summary = json.load(open(path))
m = summary["metrics"]
cpu = sorted(float(r.split(":")[0].split("+")[0]) + float(r.split(":")[0].split("+")[1]) for r in runs)
rss = max(int(r.split(":")[1]) for r in runs)
med = statistics.median(cpu)
d = m["messages_delivered"]
e = m["events_received"]
spread = f" (median of {len(cpu)}, {cpu[0]:.3f} to {cpu[-1]:.3f})" if len(cpu) > 1 else ""
print(f"{bin}  servers={n}  cpu_s={med:.3f}{spread}  peak_rss_mb={rss // 1024}  deliveries={d}  "
      f"events_received={e}  bytes={m['bytes_sent']}  cpu_us_per_delivery={med * 1e6 / d:.1f}  "
      f"deliveries_per_cpu_s={d / med:.0f}  cpu_us_per_event_received={med * 1e6 / e:.0f}  "
      f"trace={summary['trace_hash'][:16]}  {summary['verdict']}")
PY
    deliveries=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["messages_delivered"])' "$out/summary.json")
  done
  unset cpus
  # The bare-transport baseline: as many messages between as many madsim nodes, no
  # protocol work (examples/bare_transport.rs), run BARE_RUNS times (default: RUNS, at
  # most 3).
  if [ -x "$bare" ]; then
    # Repeated until about two million messages, for a CPU time well above the clock tick.
    repeat=$(( (2000000 + deliveries - 1) / deliveries ))
    bare_cpus=()
    for run in $(seq 1 "${BARE_RUNS:-$(( runs < 3 ? runs : 3 ))}"); do
      cpu_of "$bare" "$n" "$deliveries" 1 "$repeat" >target/perf/bare$n.time
      read -r user sys rss <target/perf/bare$n.time
      bare_cpus+=("$user+$sys")
    done
    python3 -c 'import statistics, sys
n, d, r, rss, *runs = sys.argv[1:]
cpu = statistics.median(float(x.split("+")[0]) + float(x.split("+")[1]) for x in runs)
rate = int(d) * int(r) / cpu if cpu > 0 else float("inf")
print(f"bare transport  servers={n}  cpu_s={cpu:.2f} (median of {len(runs)}) for {r} x {d} deliveries  peak_rss_mb={int(rss) // 1024}  deliveries_per_cpu_s={rate:.0f}")' \
      "$n" "$deliveries" "$repeat" "$rss" "${bare_cpus[@]}"
  fi
done
