#!/usr/bin/env bash
# Daemon benchmark (issue 12's targets):
#   1. idle CPU (% of one core over 60 s) and RSS of `lifeboat serve` with
#      100 resources declared in 10 plans (targets: < 1 %, < 50 MB);
#   2. scheduled-job start latency: a plan every 5 s, N runs; the daemon's
#      start of the child (event time) and the job's record in the store
#      (child exec, config load, vault open) against the scheduled second
#      (target: < 1 s).
#
#   bench/daemon.sh              # 60 s idle, 8 scheduled runs
#   bench/daemon.sh --quick      # 10 s idle, 3 runs
#   bench/daemon.sh --record     # also append the table to bench/RESULTS.md
#
# Environment: LIFEBOAT_BIN (default: build release),
# BENCH_DIR (default a temporary directory).
. "$(dirname "$0")/lib.sh"
bench_options "--quick --record" "$@"
IDLE_S=60; RUNS=8
[ "$QUICK" = 1 ] && { IDLE_S=10; RUNS=3; }
bench_lifeboat_bin
BIN=$LIFEBOAT_BIN
W=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$W"
cleanup() { bench_stop; [ -n "${BENCH_DIR:-}" ] || rm -rf "$W"; }
trap cleanup EXIT
export LIFEBOAT_PASSWORD=bench-password LIFEBOAT_INSECURE_FAST_KDF=1
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. idle with 100 resources ------------------------------------------------
I=$W/idle; rm -rf "$I"; mkdir -p "$I/data"
{
  printf '[vault.main]\nlocation = "%s/vault"\n' "$I"
  for i in $(seq 1 100); do
    mkdir -p "$I/data/r$i"; echo "$i" > "$I/data/r$i/f"
    printf '[resource.r%d]\npaths = ["%s/data/r%d"]\n' "$i" "$I" "$i"
  done
  for p in $(seq 0 9); do
    printf '[plan.p%d]\nresources = [' "$p"
    for i in $(seq $((p * 10 + 1)) $(((p + 1) * 10))); do printf '"r%d",' "$i"; done
    # Far from now and a 1-minute window: nothing is caught up, nothing runs.
    printf ']\nschedule = "0 3 1 1 *"\nwindow = "1m"\nvault = "main"\n'
  done
} > "$I/lifeboat.toml"
"$BIN" apply -c "$I/lifeboat.toml" --state "$I/state" --auto-approve > /dev/null
"$BIN" serve -c "$I/lifeboat.toml" --state "$I/state" --json > "$I/events.jsonl" 2> "$I/serve.err" &
DPID=$!; PIDS+=("$DPID")
until grep -q '"event":"ready"' "$I/events.jsonl" 2>/dev/null; do sleep 0.1; done
sleep 3
ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }
T0=$(ticks); S0=$(date +%s.%N)
sleep "$IDLE_S"
T1=$(ticks); S1=$(date +%s.%N)
HZ=$(getconf CLK_TCK)
CPU=$(python3 -c "print(f'{($T1 - $T0) / $HZ / ($S1 - $S0) * 100:.3f}')")
RSS=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$DPID/status")
HWM=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$DPID/status")
THREADS=$(awk '/Threads/ {print $2}' "/proc/$DPID/status")
kill -TERM "$DPID"; wait "$DPID" || true
echo "idle: ${CPU} % of one core over ${IDLE_S} s, RSS ${RSS} MiB (peak ${HWM} MiB), ${THREADS} threads"

# --- 2. scheduled-job start latency ---------------------------------------------
L=$W/latency; rm -rf "$L"; mkdir -p "$L/data"
head -c 1048576 /dev/urandom > "$L/data/blob"
printf '[vault.main]\nlocation = "%s/vault"\n[resource.r]\npaths = ["%s/data"]\n[plan.fast]\nresources = ["r"]\nvault = "main"\nschedule = "*/5 * * * * *"\n' "$L" "$L" > "$L/lifeboat.toml"
"$BIN" apply -c "$L/lifeboat.toml" --state "$L/state" --auto-approve > /dev/null
"$BIN" serve -c "$L/lifeboat.toml" --state "$L/state" --json > "$L/events.jsonl" 2> "$L/serve.err" &
DPID=$!; PIDS+=("$DPID")
until [ "$(grep -c '"event":"run-ended"' "$L/events.jsonl" 2>/dev/null || true)" -gt "$RUNS" ]; do sleep 0.5; done
kill -TERM "$DPID"; wait "$DPID" || true
"$BIN" jobs list --state "$L/state" --json --limit 1000 > "$L/jobs.json"
read -r LAT_SPAWN LAT_JOB < <(python3 - "$L/events.jsonl" "$L/jobs.json" <<'EOF'
import json, sys, datetime as dt
def t(s): return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
def lag(x):  # seconds after the previous multiple of 5 s
    return (x.second % 5) + x.microsecond / 1e6
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
spawn = [lag(t(e["time"])) for e in ev if e["event"] == "run-started" and e.get("trigger") == "schedule"]
jobs = [lag(t(j["started"])) for j in json.load(open(sys.argv[2])) if j["trigger"] == "schedule" and j["status"] != "skipped"]
fmt = lambda v: f"{max(v)*1000:.0f}/{sorted(v)[len(v)//2]*1000:.0f}" if v else "-"
print(fmt(spawn), fmt(jobs))
EOF
)
echo "latency (max/median ms after the scheduled time): daemon starts the run ${LAT_SPAWN}; the job is recorded ${LAT_JOB}"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "machine: $(nproc) cores, load before ${LOAD_BEFORE}, after ${LOAD_AFTER}"

if [ "$RECORD" = 1 ]; then
  {
    echo
    echo "### Daemon benchmark, $(date -u +%Y-%m-%d) — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
    echo
    echo "\`bench/daemon.sh\` ($("$BIN" --version)); load average before ${LOAD_BEFORE}, after ${LOAD_AFTER}."
    echo
    echo "| figure | measured | target |"
    echo "|---|---|---|"
    echo "| idle CPU, 100 resources in 10 plans, over ${IDLE_S} s | ${CPU} % of one core | < 1 % |"
    echo "| idle RSS (peak) | ${RSS} MiB (${HWM} MiB), ${THREADS} threads | < 50 MB |"
    echo "| scheduled run started by the daemon, max/median over ${RUNS}+ runs | ${LAT_SPAWN} ms | < 1 s |"
    echo "| the job recorded by its child (exec, config, vault open), max/median | ${LAT_JOB} ms | |"
  } >> bench/RESULTS.md
fi
