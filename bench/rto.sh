#!/usr/bin/env bash
# RTO of the whole stack: the demo's disaster and recovery (scripts/demo:
# Unishop under load, the primary destroyed, recovered into the secondary),
# with the shop's database server grown to SIZES GB of rows, for each database
# point MODES (logical: a snapshot loaded through SQL; physical: a
# mariadb-backup point restored as the data directory). Prints each run's
# downtime, the recovery's own time and its steps (each member's, side by
# side), and the orders lost.
# Usage: bench/rto.sh [--record]   (--record appends to bench/RESULTS.md)
# Environment: SIZES ("1"), MODES ("logical physical"), DEMO_RUN_S (30),
#   DEMO_RATE (50), WORK (bench/work/rto), DEMO_BIN_DIR (release binaries;
#   built when unset).
. "$(dirname "$0")/lib.sh"
bench_options "--record" "$@"
SIZES=${SIZES:-1}
MODES=${MODES:-logical physical}
WORK=${WORK:-$ROOT/bench/work/rto}
export DEMO_RUN_S=${DEMO_RUN_S:-30} DEMO_RATE=${DEMO_RATE:-50}
if [ -z "${DEMO_BIN_DIR:-}" ]; then
  echo "== building lifeboat and unishop (release)"
  (cd "$ROOT" && cargo build --release --locked -q -p lifeboat-cli -p unishop)
  export DEMO_BIN_DIR=$ROOT/target/release
fi
mkdir -p "$WORK"
table="$WORK/table.md"
printf '| database | points | downtime s | recovery s | database member (steps, s) | instance files s | replay | orders lost |\n|---|---|---|---|---|---|---|---|\n' >"$table"
for gb in $SIZES; do
  for mode in $MODES; do
    dir=$WORK/demo-$mode-$gb
    echo "== $mode points, database grown by $gb GB"
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    if ! DEMO_DIR=$dir DEMO_DB_MODE=$mode DEMO_DB_GB=$gb "$ROOT/scripts/demo" >"$WORK/demo-$mode-$gb.log" 2>&1; then
      echo "the demo failed ($mode, $gb GB): $WORK/demo-$mode-$gb.log" >&2
      tail -20 "$WORK/demo-$mode-$gb.log" >&2
      exit 1
    fi
    python3 - "$dir" "$mode" "$gb" "$load_before" >>"$table" <<'PY'
import json, re, sys
d, mode, gb, load = sys.argv[1:5]
r = json.load(open(f"{d}/recovery.json"))
db = [s for s in r["steps"] if s.get("member") == "shop-db"]
host = [s for s in r["steps"] if s.get("member") == "shop-host" and "files" in s["step"]]
replay = [s for s in db if s["step"] == "replay the binlog archive"]
steps = "; ".join(f'{s["step"]} {s["duration_s"]:.2f}' for s in db)
rep = "; ".join(f'{s.get("bytes", 0) / 1048576:.1f} MiB in {s["duration_s"]:.2f} s' for s in replay)
log = open(f"{d}/../demo-{mode}-{gb}.log").read()
lost = re.search(r"lost: (\d+)", log)
files = f'{host[0]["duration_s"]:.2f} (from {host[0]["at_s"]:.2f})' if host else ""
print(f'| +{gb} GB | {mode} | {r["downtime_s"]:.1f} | {r["recovery_s"]:.1f} | {steps} | '
      f'{files} | {rep} | {lost.group(1) if lost else "?"} (load {load}) |')
PY
    rm -rf "$dir/primary" "$dir/secondary"
  done
done
cat "$table"
if [ "$RECORD" = 1 ]; then
  {
    printf '\n### RTO of the whole stack (bench/rto.sh), %s — %s\n\n' "$(date -u +%F)" "$(nproc) cores, $(uname -sr)"
    printf 'The demo (Unishop at %s orders/s for %s s, the primary destroyed, recovered into the secondary) with the shop'"'"'s server grown by SIZES GB of rows, for each database point mode.\n\n' "$DEMO_RATE" "$DEMO_RUN_S"
    cat "$table"
  } >>"$ROOT/bench/RESULTS.md"
fi
