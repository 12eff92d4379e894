#!/usr/bin/env bash
# MariaDB physical points benchmark (issue 23), all tools side by side in one
# run on one generated database (bench_mysql_generate, the shop of mysql.sh):
#   full backup:  lifeboat backup mysql --physical  vs  mariadb-backup --backup
#                 to a local directory  vs  mariadb-backup --stream=mbstream | zstd -1
#   incremental:  after ~5 % of the rows changed (the newest orders and events,
#                 as a shop's recent orders change; plus new rows):
#                 lifeboat backup mysql --physical --incremental (only when
#                 `backup mysql --help` offers it)  vs  mariadb-backup --incremental-basedir
#   restore:      lifeboat restore mysql --physical + server start  vs
#                 mariadb-backup --prepare + --copy-back + server start  vs
#                 lifeboat restore mysql of a logical point into an empty server
# Order (for the least disk at the peak, about 2.5 × the database): the
# logical route first (own vault, removed after), then the physical backups,
# the source removed, then the physical restores.
# Seconds, stored bytes and peak RSS (the largest process of the step, GNU
# time's %M); every restore is checked with CHECKSUM TABLE against the source
# at that point. Servers are throw-away mariadbd instances with the same
# settings. The script deletes what it no longer needs between steps and
# stops before a step would leave less than MIN_FREE_GB free on the disk.
# Usage: bench/mysql-physical.sh [--record]   (--record appends to bench/RESULTS.md)
# Environment: SIZE_GB (1: about the database's data+indexes), WORK
# (bench/work/mysql-physical), MIN_FREE_GB (10), KEEP_WORK=1 keeps the data.
. "$(dirname "$0")/lib.sh"
bench_options "--record" "$@"
SIZE_GB=${SIZE_GB:-1}
WORK=${WORK:-$ROOT/bench/work/mysql-physical}
MIN_FREE_GB=${MIN_FREE_GB:-10}
export LIFEBOAT_PASSWORD=bench-password LIFEBOAT_VAULT=file://$WORK/vault
bench_require "apt-get install mariadb-server mariadb-client mariadb-backup zstd" \
  /usr/sbin/mariadbd mariadb mariadb-backup zstd /usr/bin/time
echo "== building lifeboat (release)"
bench_lifeboat_bin
LB=$LIFEBOAT_BIN

rm -rf "$WORK"; mkdir -p "$WORK/out"
OUT=$WORK/out
cleanup() {
  bench_stop
  [ "${KEEP_WORK:-}" = 1 ] || rm -rf "$WORK"/{src,dst,vault,vault-logical,local,inc,copy,restored,stream.mbs.zst}
}
trap cleanup EXIT

SERVER_OPTS=(--innodb-buffer-pool-size=4G --innodb-log-file-size=1G --max-allowed-packet=256M)
sql() { local name=$1; shift; mariadb --no-defaults -S "$WORK/$name/sock" -uroot "$@"; }
checksums() { bench_mysql_checksums sql "$1"; }
now() { date +%s.%N; }
size_b() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
mib() { python3 -c "print(f'{$1 / 1048576:.0f}')"; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# disk_guard BYTES STEP: stops when writing BYTES more would leave less than MIN_FREE_GB free.
disk_guard() {
  local avail; avail=$(df -B1 --output=avail "$WORK" | tail -1)
  if [ $((avail - $1)) -lt $((MIN_FREE_GB * 1073741824)) ]; then
    echo "not enough disk for $2: $(mib "$avail") MiB free, the step needs about $(mib "$1") MiB and ${MIN_FREE_GB} GiB must stay free" >&2
    exit 1
  fi
  PEAK_USE=$(( $(size_b "$WORK") + $1 > ${PEAK_USE:-0} ? $(size_b "$WORK") + $1 : ${PEAK_USE:-0} ))
}

# run STEP CMD…: times CMD (T[STEP] seconds, M[STEP] MiB peak RSS of its largest process).
declare -A T M
run() {
  local step=$1; shift
  if ! /usr/bin/time -f "%e %M" -o "$OUT/$step.time" "$@" >"$OUT/$step.out" 2>"$OUT/$step.err"; then
    echo "$step failed:" >&2; tail -20 "$OUT/$step.err" >&2; exit 1
  fi
  read -r T[$step] M[$step] < "$OUT/$step.time"
  M[$step]=$(( M[$step] / 1024 ))
  printf '   %-22s %8s s  %6s MiB RSS  (load %s)\n' "$step" "${T[$step]}" "${M[$step]}" "$(cut -d' ' -f1 /proc/loadavg)"
}

# start_timed STEP NAME DATADIR: starts a server on DATADIR (run dir $WORK/NAME), T[STEP] its start.
start_timed() {
  local step=$1 name=$2 datadir=$3 s
  s=$(now)
  bench_mariadbd_on "$WORK/$name" "$datadir" "$(free_port)" --server-id=$((RANDOM + 1)) "${SERVER_OPTS[@]}"
  T[$step]=$(python3 -c "print(f'{$(now) - $s:.2f}')")
  printf '   %-22s %8s s\n' "$step" "${T[$step]}"
}
# verify NAME WANT WHAT: the server NAME's checksums are WANT, else the script stops.
verify() {
  local got; got=$(checksums "$1")
  [ "$got" = "$2" ] || { echo "RESTORE MISMATCH ($3): $got vs $2" >&2; exit 1; }
  echo "   $3: CHECKSUM TABLE equal to the source's"
}
stop_server() { bench_mariadbd_stop "$WORK/$1" "$MARIADBD_PID"; }
vault_b() { size_b "$WORK/vault"; }
MB=(--user=root --socket="$WORK/src/sock" --parallel=2)

# --- the source -----------------------------------------------------------------
PORT_src=$(free_port)
bench_start_mariadb "$WORK/src" "$PORT_src" --server-id=1 "${SERVER_OPTS[@]}"
SRC_PID=$MARIADBD_PID
ORDERS=$(python3 -c "print(int($SIZE_GB * 5.5e6))")
disk_guard $((SIZE_GB * 1200 * 1048576)) "generating the database"
echo "== generating about ${SIZE_GB} GB (data+indexes) in database bench, $ORDERS orders (not in the binlog)"
# The generation stays out of the binlog: gigabytes of row events no tool here reads.
gen_sql() { sql src --init-command="SET sql_log_bin = 0" "$@"; }
bench_mysql_generate "$ORDERS" gen_sql >/dev/null
# Every copy starts from the same state: InnoDB's dirty pages written (as a
# server does on its own after a while), not a copy of gigabytes of redo log.
settle() {
  sql src -e "SET GLOBAL innodb_max_dirty_pages_pct = 0; FLUSH TABLES"
  for _ in $(seq 1 1200); do
    [ "$(sql src -N -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | cut -f2)" = 0 ] && break
    sleep 0.5
  done
  sql src -e "SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT"
}
settle
DATA_MB=$(sql src -N -e "SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM information_schema.TABLES WHERE table_schema = 'bench'")
ROWS=$(sql src -N -e "SELECT SUM(table_rows) FROM information_schema.TABLES WHERE table_schema = 'bench'")
DIR_B=$(size_b "$WORK/src/data")
SUM0=$(checksums src)
echo "   $DATA_MB MiB of data and indexes, $ROWS rows; data directory $(mib "$DIR_B") MiB (with its 1 GiB redo log)"
DSN="mysql://root@localhost?socket=$WORK/src/sock"

# --- the logical route (its own vault, removed after: less disk at the peak) --------
echo "== logical: lifeboat backup mysql, then restore mysql into an empty running server"
LOGICAL=(env LIFEBOAT_VAULT="file://$WORK/vault-logical" "$LB")
"${LOGICAL[@]}" vault init -q
run backup_logical "${LOGICAL[@]}" backup mysql --dsn "$DSN" --databases bench -q
LOGICAL_ID=$(tail -1 "$OUT/backup_logical.out")
LOGICAL_B=$(size_b "$WORK/vault-logical")
disk_guard "$DIR_B" "the logical restore"
bench_start_mariadb "$WORK/dst" "$(free_port)" --server-id=2 "${SERVER_OPTS[@]}"
DST_PID=$MARIADBD_PID
run restore_logical "${LOGICAL[@]}" restore mysql "$LOGICAL_ID" --dsn "mysql://root@localhost?socket=$WORK/dst/sock" -q
verify dst "$SUM0" "lifeboat logical restore"
bench_mariadbd_stop "$WORK/dst" "$DST_PID"; rm -rf "$WORK/dst" "$WORK/vault-logical"

# --- full backups -----------------------------------------------------------------
echo "== full physical backups"
"$LB" vault init -q
v1=$(vault_b)
disk_guard "$DIR_B" "the physical backups"
run backup_lifeboat "$LB" backup mysql --physical --dsn "$DSN" --json
FULL_ID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$OUT/backup_lifeboat.out")
v2=$(vault_b); FULL_B=$((v2 - v1))
run backup_stream_zstd bash -c "mariadb-backup --backup ${MB[*]} --stream=mbstream --target-dir='$WORK/stream-tmp' | zstd -q -1 -T0 > '$WORK/stream.mbs.zst'"
STREAM_B=$(size_b "$WORK/stream.mbs.zst"); rm -rf "$WORK/stream.mbs.zst" "$WORK/stream-tmp"
run backup_local mariadb-backup --backup "${MB[@]}" --target-dir="$WORK/local"
LOCAL_B=$(size_b "$WORK/local")
# "Raw": what a physical copy holds uncompressed (mariadb-backup's directory).
RAW_B=$LOCAL_B
# Lifeboat's fixed cost per command (the vault opened: key derivation, index).
run vault_open "$LB" points list -q

# --- incremental backups ------------------------------------------------------------
HAS_INC=0
"$LB" backup mysql --help | grep -q -- '--incremental' && HAS_INC=1
echo "== about 5 % of the rows changed (the newest orders and events updated, 1 % new orders)"
MAXO=$ORDERS; MAXE=$(sql src -N -e "SELECT MAX(id) FROM bench.events")
sql src bench -e "UPDATE orders SET status = 'done', note = CONCAT('changed ', MD5(id)) WHERE id > $((MAXO * 95 / 100));
  UPDATE events SET kind = 'refunded' WHERE id > $((MAXE * 95 / 100));
  UPDATE customers SET email = CONCAT('new', id, '@example.com') WHERE id % 20 = 0;
  INSERT INTO orders SELECT $MAXO + seq, seq % 500003, seq % 100003, 1, 9.99, 1, NOW(6), 'new order' FROM seq_1_to_$((ORDERS / 100))"
settle
SUM1=$(checksums src)
if [ "$HAS_INC" = 1 ]; then
  run inc_lifeboat "$LB" backup mysql --physical --incremental --dsn "$DSN" --json
  INC_ID=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['id'])" "$OUT/inc_lifeboat.out")
  INC_B=$(( $(vault_b) - v2 ))
else
  echo "   lifeboat: skipped (this build's \`backup mysql\` has no --incremental yet)"
fi
run inc_local mariadb-backup --backup "${MB[@]}" --target-dir="$WORK/inc" --incremental-basedir="$WORK/local"
INC_LOCAL_B=$(size_b "$WORK/inc")

# Only the vault and the local copies are needed from here on.
bench_mariadbd_stop "$WORK/src" "$SRC_PID"; rm -rf "$WORK/src"

# --- restores ---------------------------------------------------------------------
echo "== restores (each into a new data directory, then a server started on it)"
disk_guard "$DIR_B" "lifeboat's physical restore"
run restore_lifeboat "$LB" restore mysql "$FULL_ID" --physical --datadir "$WORK/restored" --json
start_timed start_lifeboat restored-run "$WORK/restored"
verify restored-run "$SUM0" "lifeboat physical restore"
stop_server restored-run; rm -rf "$WORK/restored" "$WORK/restored-run"

disk_guard "$DIR_B" "mariadb-backup's copy-back"
run prepare_local mariadb-backup --prepare --target-dir="$WORK/local"
run copyback_local mariadb-backup --copy-back --target-dir="$WORK/local" --datadir="$WORK/copy"
start_timed start_local copy-run "$WORK/copy"
verify copy-run "$SUM0" "mariadb-backup prepare + copy-back"
stop_server copy-run; rm -rf "$WORK/copy" "$WORK/copy-run"

if [ "$HAS_INC" = 1 ]; then
  run inc_restore_lifeboat "$LB" restore mysql "$INC_ID" --physical --datadir "$WORK/restored" --json
  start_timed inc_start_lifeboat restored-run "$WORK/restored"
  verify restored-run "$SUM1" "lifeboat physical restore of the chain"
  stop_server restored-run; rm -rf "$WORK/restored" "$WORK/restored-run"
fi
# The chain for mariadb-backup: the base prepared above, then the incremental applied to it.
run inc_prepare_local mariadb-backup --prepare --target-dir="$WORK/local" --incremental-dir="$WORK/inc"
run inc_copyback_local mariadb-backup --copy-back --target-dir="$WORK/local" --datadir="$WORK/copy"
start_timed inc_start_local copy-run "$WORK/copy"
verify copy-run "$SUM1" "mariadb-backup prepare of the chain + copy-back"
stop_server copy-run; rm -rf "$WORK/copy" "$WORK/copy-run" "$WORK/local" "$WORK/inc"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- figures ------------------------------------------------------------------------
f() { python3 -c "print(f'{$1:.2f}')"; }
RESTORE_LB=$(f "${T[restore_lifeboat]} + ${T[start_lifeboat]}")
# lifeboat's own split of its restore (its --json report): extraction, prepare.
split() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"extract {r['extract_s']:.2f} + prepare {r['prepare_s']:.2f}\")" "$OUT/$1.out"; }
RESTORE_LOCAL=$(f "${T[prepare_local]} + ${T[copyback_local]} + ${T[start_local]}")
INC_RESTORE_LOCAL=$(f "${T[prepare_local]} + ${T[inc_prepare_local]} + ${T[inc_copyback_local]} + ${T[inc_start_local]}")
R_FULL=$(f "${T[backup_lifeboat]} / ${T[backup_local]}")
R_STORED=$(f "$FULL_B / $RAW_B")
R_RESTORE=$(f "$RESTORE_LB / $RESTORE_LOCAL")
R_LOGICAL=$(f "${T[restore_logical]} / $RESTORE_LB")
R_INC_LOCAL=$(f "${T[inc_local]} / ${T[backup_local]}")
RESTORE_LB_RSS=$(( M[restore_lifeboat] ))
if [ "$HAS_INC" = 1 ]; then
  INC_RESTORE_LB=$(f "${T[inc_restore_lifeboat]} + ${T[inc_start_lifeboat]}")
  R_INC=$(f "${T[inc_lifeboat]} / ${T[backup_lifeboat]}")
  R_INC_B=$(f "$INC_B / $INC_LOCAL_B")
  INC_ROW="| incremental backup after ~5 % of rows changed | ${T[inc_lifeboat]} s, $(mib "$INC_B") MiB stored, ${M[inc_lifeboat]} MiB RSS | ${T[inc_local]} s, $(mib "$INC_LOCAL_B") MiB, ${M[inc_local]} MiB RSS | | ${R_INC}× of lifeboat's full (target ≤ 0.33); stored ${R_INC_B}× mariadb-backup's changed pages (target ≈ 1) |"
  INC_RESTORE_ROW="| restore of the chain (full + incremental) + start | ${INC_RESTORE_LB} s (restore ${T[inc_restore_lifeboat]}: $(split inc_restore_lifeboat); start ${T[inc_start_lifeboat]}), ${M[inc_restore_lifeboat]} MiB RSS | ${INC_RESTORE_LOCAL} s (prepare ${T[prepare_local]} + ${T[inc_prepare_local]}, copy-back ${T[inc_copyback_local]}, start ${T[inc_start_local]}) | | $(f "$INC_RESTORE_LB / $INC_RESTORE_LOCAL")× (target ≤ 1.5) |"
else
  INC_ROW="| incremental backup after ~5 % of rows changed | skipped: this build has no \`--incremental\` | ${T[inc_local]} s, $(mib "$INC_LOCAL_B") MiB, ${M[inc_local]} MiB RSS (${R_INC_LOCAL}× of its full) | | |"
  INC_RESTORE_ROW="| restore of the chain (full + incremental) + start | skipped | ${INC_RESTORE_LOCAL} s (prepare ${T[prepare_local]} + ${T[inc_prepare_local]}, copy-back ${T[inc_copyback_local]}, start ${T[inc_start_local]}) | | |"
fi
TABLE=$(cat <<EOF
| step | lifeboat | mariadb-backup, local directory | mariadb-backup --stream=mbstream \| zstd -1 | against the issue's target |
|---|---|---|---|---|
| full backup | ${T[backup_lifeboat]} s, $(mib "$FULL_B") MiB stored, ${M[backup_lifeboat]} MiB RSS | ${T[backup_local]} s, $(mib "$LOCAL_B") MiB, ${M[backup_local]} MiB RSS | ${T[backup_stream_zstd]} s, $(mib "$STREAM_B") MiB, ${M[backup_stream_zstd]} MiB RSS | ${R_FULL}× mariadb-backup's time (target ≤ 1.2); stored ${R_STORED}× the raw $(mib "$RAW_B") MiB (target ≤ 0.5) |
$INC_ROW
| restore + server start | ${RESTORE_LB} s (restore ${T[restore_lifeboat]}: $(split restore_lifeboat); start ${T[start_lifeboat]}), ${RESTORE_LB_RSS} MiB RSS | ${RESTORE_LOCAL} s (prepare ${T[prepare_local]}, copy-back ${T[copyback_local]}, start ${T[start_local]}), ${M[prepare_local]}/${M[copyback_local]} MiB RSS | | ${R_RESTORE}× prepare+copy-back (target ≤ 1.5) |
$INC_RESTORE_ROW
| logical: lifeboat backup / restore mysql (into an empty running server) | ${T[backup_logical]} s, $(mib "$LOGICAL_B") MiB stored / ${T[restore_logical]} s, ${M[restore_logical]} MiB RSS | | | physical restore ${R_LOGICAL}× faster than the logical one (target ≥ 5) |
EOF
)
echo
echo "$TABLE"
echo
echo "lifeboat's fixed cost per command (vault opened, \`points list\`): ${T[vault_open]} s; load average before ${LOAD_BEFORE}, after ${LOAD_AFTER}; peak disk use of the work directory about $(mib "$PEAK_USE") MiB"

if [ "$RECORD" = 1 ]; then
  {
    echo
    echo "### MariaDB physical points, $(date -u +%F) — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), MariaDB $(mariadbd --version | awk '{print $3}'), SIZE_GB=$SIZE_GB"
    echo
    echo "\`SIZE_GB=$SIZE_GB bench/mysql-physical.sh --record\`. Database \`bench\` (the generator of bench/mysql.sh): $(printf "%'d" "$ORDERS") orders, $ROWS rows, $DATA_MB MiB data+indexes, data directory $(mib "$DIR_B") MiB with its 1 GiB redo log; \"raw\" below is mariadb-backup's local copy, $(mib "$RAW_B") MiB. Servers: 4 GiB buffer pool, 1 GiB redo log, binlog on; mariadb-backup with --parallel=2 (lifeboat's default). RSS: the largest process of the step (GNU time). Every restore: CHECKSUM TABLE equal to the source's at that point. Lifeboat's fixed cost per command (the vault opened: key derivation, index; \`points list\`): ${T[vault_open]} s. Load average before ${LOAD_BEFORE}, after ${LOAD_AFTER} (2 cores shared with other work); peak disk use of the run about $(mib "$PEAK_USE") MiB."
    echo
    echo "$TABLE"
  } >> bench/RESULTS.md
  echo "recorded in bench/RESULTS.md"
fi
