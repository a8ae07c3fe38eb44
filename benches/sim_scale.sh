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
# (for profiling them by hand). Then runs the bare-transport baseline (BARE, default
# target/release/examples/bare_transport; build it with `cargo build --release --example
# bare_transport`) with as many nodes and messages, and prints its deliveries per CPU
# second.
set -euo pipefail
binaries=${MXSIM:-target/release/mxsim}
bare=${BARE:-target/release/examples/bare_transport}
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
  for bin in $binaries; do
    out=target/perf/big$n-$(echo "$bin" | tr '/' '_')
    /usr/bin/time -f "%U %S %M" -o "$out.time" "$bin" run "$scenario" --seed 1 --out "$out" --quiet >/dev/null 2>&1 || true
    read -r user sys rss <"$out.time"
    python3 - "$bin" "$n" "$user" "$sys" "$rss" "$out/summary.json" <<'PY'
import json, sys
bin, n, user, sys_s, rss, path = sys.argv[1:]
summary = json.load(open(path))
m = summary["metrics"]
cpu = float(user) + float(sys_s)
d = m["messages_delivered"]
e = m["events_received"]
print(f"{bin}  servers={n}  cpu_s={cpu:.2f}  peak_rss_mb={int(rss) // 1024}  deliveries={d}  "
      f"events_received={e}  bytes={m['bytes_sent']}  cpu_us_per_delivery={cpu * 1e6 / d:.0f}  "
      f"cpu_us_per_event_received={cpu * 1e6 / e:.0f}  "
      f"trace={summary['trace_hash'][:16]}  {summary['verdict']}")
PY
    deliveries=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["messages_delivered"])' "$out/summary.json")
  done
  # The bare-transport baseline: as many messages between as many madsim nodes, no
  # protocol work (examples/bare_transport.rs).
  if [ -x "$bare" ]; then
    # Repeated until about two million messages, for a CPU time well above the clock tick.
    repeat=$(( (2000000 + deliveries - 1) / deliveries ))
    /usr/bin/time -f "%U %S %M" -o target/perf/bare$n.time "$bare" "$n" "$deliveries" 1 "$repeat" >/dev/null
    read -r user sys rss <target/perf/bare$n.time
    python3 -c 'import sys
n, d, r, u, s, rss = sys.argv[1:]
cpu = float(u) + float(s)
rate = int(d) * int(r) / cpu if cpu > 0 else float("inf")
print(f"bare transport  servers={n}  cpu_s={cpu:.2f} for {r} x {d} deliveries  peak_rss_mb={int(rss) // 1024}  deliveries_per_cpu_s={rate:.0f}")' \
      "$n" "$deliveries" "$repeat" "$user" "$sys" "$rss"
  fi
done
