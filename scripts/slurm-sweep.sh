#!/usr/bin/env bash
# Proves the Slurm path of docs/sweeps.md on a real one-node Slurm cluster on loopback:
# installs Debian's slurm-wlm and munge, starts munged, slurmctld and slurmd with their own
# configuration and state under one scratch directory, submits scripts/sweep.sbatch as a
# job array of 4 shards, waits, merges the shards with `mxsim merge`, runs the same sweep
# locally, and compares the results seed by seed (everything but wall time). The daemons
# it started are stopped by their PIDs on every exit.
#
# Needs root on Debian (bookworm or later) with network access to the Debian mirror.
#
#   MXSIM=target/release/mxsim scripts/slurm-sweep.sh [SCENARIO] [SEEDS]
#
# Environment: MXSIM (default target/release/mxsim), MXSIM_SLURM_DIR (scratch directory,
# default a new one under /tmp; removed on success unless MXSIM_SLURM_KEEP=1).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
scenario=$(realpath "${1:-$repo/scenarios/partition-heal.toml}")
seeds=${2:-1..=8}
mxsim=$(realpath "${MXSIM:-$repo/target/release/mxsim}")
dir=${MXSIM_SLURM_DIR:-$(mktemp -d /tmp/mxsim-slurm.XXXXXX)}
mkdir -p "$dir"
dir=$(realpath "$dir")
t0=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - t0) / 1000000 )); printf '%d.%03d s' $((ms / 1000)) $((ms % 1000)); }
say() { echo "[slurm-sweep $(elapsed)] $*"; }

[ -x "$mxsim" ] || { echo "no mxsim binary at $mxsim (set MXSIM)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (installs packages, runs the daemons)" >&2; exit 2; }

# --- install -------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
say "slurm $(slurmctld -V | awk '{print $2}'), munge $(munged --version | awk '{print $1}')"

# --- stop what we started, whatever happens ----------------------------------------------
pids=()
job=""
cleanup() {
  local code=$?
  if [ -n "$job" ]; then scancel "$job" 2>/dev/null || true; fi
  # Stop order: slurmd, slurmctld, munged (the reverse of start-up), each by its PID.
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    local pid=${pids[$i]}
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ "$code" = 0 ] && [ -z "${MXSIM_SLURM_KEEP:-}" ] && [ -z "${MXSIM_SLURM_DIR:-}" ]; then
    rm -rf "$dir"
  else
    echo "scratch directory kept: $dir" >&2
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The daemons write their PID files after forking; wait for one and remember the PID.
started() {
  local file=$1
  for _ in $(seq 100); do
    if [ -s "$file" ]; then pids+=("$(cat "$file")"); return 0; fi
    sleep 0.1
  done
  echo "no PID file $file" >&2
  return 1
}

free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# --- munge -------------------------------------------------------------------------------
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/out"
chmod 0755 "$dir/munge"
dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
chmod 0400 "$dir/munge.key"
socket="$dir/munge/munge.socket"
munged --force --key-file="$dir/munge.key" --socket="$socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
started "$dir/munged.pid"
munge -S "$socket" -n </dev/null | unmunge -S "$socket" >/dev/null
say "munged up (pid ${pids[-1]})"

# --- slurm -------------------------------------------------------------------------------
host=$(hostname -s)
ctld_port=$(free_port 16817)
slurmd_port=$(free_port $((ctld_port + 1)))
# The node line must match the machine exactly; slurmd -C prints it.
node=$(slurmd -C | head -n1 | sed -E 's/^NodeName=[^ ]+ //')
user=$(id -un)
export SLURM_CONF="$dir/slurm.conf"
cat >"$SLURM_CONF" <<CONF
ClusterName=mxsim
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=$user
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 $node
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -f "$SLURM_CONF"
started "$dir/slurmctld.pid"
slurmd -f "$SLURM_CONF"
started "$dir/slurmd.pid"
for _ in $(seq 100); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  case "$state" in idle*|mix*|alloc*) break ;; esac
  sleep 0.2
done
say "slurmctld (pid ${pids[1]}, port $ctld_port) and slurmd (pid ${pids[2]}) up; node $host: ${state:-unknown}"

# --- the sweep as a job array --------------------------------------------------------------
cd "$dir/out"
job=$(MXSIM="$mxsim" sbatch --parsable --array=0-3 --chdir="$dir/out" \
  "$repo/scripts/sweep.sbatch" "$scenario" "$seeds" "$dir/out")
say "submitted job array $job (4 shards of seeds $seeds)"
for _ in $(seq 1500); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 0.2
done
[ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || { echo "job $job still queued after 300 s" >&2; exit 1; }
job=""
say "job array finished: $(ls "$dir"/out/results-*.jsonl | wc -l) result files"
for log in "$dir"/out/mxsim-sweep-*.log; do sed 's/^/  | /' "$log"; done

set +e
"$mxsim" merge "$dir"/out/results-*.jsonl --out "$dir/merged.jsonl" >"$dir/merge.txt"
merge_code=$?
"$mxsim" sweep "$scenario" --seeds "$seeds" --jobs 2 --out "$dir/local.jsonl" \
  --reports "$dir/local-reports" >"$dir/local.txt" 2>/dev/null
local_code=$?
set -e
say "merge exit $merge_code, local sweep exit $local_code"
sed 's/^/  merge | /' "$dir/merge.txt"
[ "$merge_code" = 0 ] || [ "$merge_code" = 1 ] || exit 1

# Seed lines without wall time, sorted by seed: equal for the same build on any machine.
seed_lines() { grep '"type":"seed"' "$1" | sed -E 's/,"wall_ms":[0-9]+//' | sort; }
if ! diff <(seed_lines "$dir/merged.jsonl") <(seed_lines "$dir/local.jsonl"); then
  echo "FAIL: the merged Slurm shards differ from the local sweep" >&2
  exit 1
fi
summary() { grep -v '^traces and reports of failing seeds' "$1"; }
if ! diff <(summary "$dir/merge.txt") <(summary "$dir/local.txt") >/dev/null; then
  echo "FAIL: the merge summary differs from the local sweep's summary" >&2
  diff "$dir/merge.txt" "$dir/local.txt" >&2 || true
  exit 1
fi
say "OK: $(seed_lines "$dir/local.jsonl" | wc -l) seeds, the merged Slurm shards equal the local sweep seed by seed"
