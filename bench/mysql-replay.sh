#!/usr/bin/env bash
# Bounded replay (issue 23): how fast can the archived binlog be applied to a
# restored server? A source with a shop's database (bench/mysql-checkout.lua)
# is copied physically (mariadb-backup --backup + --prepare: the base, and
# its binlog coordinates), then runs LOAD_SECONDS of checkout transactions at
# RATE per second over THREADS connections. Each route then starts a server
# on a fresh copy of the base and applies the binlog written since the base:
#   pipe             mariadb-binlog --start-position=POS --disable-log-bin FILES | mariadb
#                    (what `restore mysql --at` does today: one session)
#   relay:N:MODE     the binlog files placed as the server's relay logs, CHANGE MASTER
#                    TO RELAY_LOG_FILE/RELAY_LOG_POS, START SLAVE SQL_THREAD with
#                    slave_parallel_threads=N, slave_parallel_mode=MODE; done when
#                    MASTER_GTID_WAIT(the source's last GTID) returns
#   ROUTE+relaxed    ROUTE with innodb_flush_log_at_trx_commit=2 during the replay
#                    (no flush at each commit: a crash during the replay means replaying again)
# Every route must end with the source's CHECKSUM TABLE. Then a point-in-time
# check: START SLAVE SQL_THREAD UNTIL master_gtid_pos=<a GTID mid-way> against
# mariadb-binlog --stop-position=<that GTID> | mariadb.
# Usage: bench/mysql-replay.sh [--record]   (--record appends to bench/RESULTS.md)
# Environment: LOAD_SECONDS (60), RATE (200 checkouts/s; 0: as fast as it goes),
# THREADS (8), BASE_ORDERS (1000000), ROUTES (see below), WORK (bench/work/mysql-replay),
# KEEP_WORK=1 keeps the data.
. "$(dirname "$0")/lib.sh"
bench_options "--record" "$@"
LOAD_SECONDS=${LOAD_SECONDS:-60}
RATE=${RATE:-200}
THREADS=${THREADS:-8}
BASE_ORDERS=${BASE_ORDERS:-1000000}
ROUTES=${ROUTES:-"pipe pipe+relaxed relay:0:conservative relay:2:optimistic relay:4:optimistic relay:8:optimistic relay:4:aggressive relay:8:aggressive relay:4:conservative relay:4:optimistic+relaxed"}
WORK=${WORK:-$ROOT/bench/work/mysql-replay}
bench_install sysbench
bench_require "apt-get install mariadb-server mariadb-client mariadb-backup" \
  /usr/sbin/mariadbd mariadb mariadb-binlog mariadb-backup sysbench

rm -rf "$WORK"; mkdir -p "$WORK/out"
OUT=$WORK/out
cleanup() {
  bench_stop
  [ "${KEEP_WORK:-}" = 1 ] || rm -rf "$WORK"/{src,base,binlogs,r}
}
trap cleanup EXIT

sql() { local name=$1; shift; mariadb --no-defaults -S "$WORK/$name/sock" -uroot "$@"; }
now() { date +%s.%N; }
TABLES="shop.products, shop.customers, shop.orders, shop.order_items"
checksums() { sql "$1" -N -e "CHECKSUM TABLE $TABLES" | awk '{print $2}' | tr '\n' ' '; }
# The settings of a durable shop database (and of the restored server).
SERVER_OPTS=(--innodb-buffer-pool-size=1G --innodb-log-file-size=256M --innodb-flush-log-at-trx-commit=1
  --sync-binlog=1 --max-connections=200)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== source: a shop with $BASE_ORDERS orders"
bench_start_mariadb "$WORK/src" "$(free_port)" --server-id=1 "${SERVER_OPTS[@]}"
SRC_PID=$MARIADBD_PID
sql src -e "CREATE DATABASE shop"
SB=(sysbench "$ROOT/bench/mysql-checkout.lua" --mysql-socket="$WORK/src/sock" --mysql-user=root --mysql-db=shop
  --orders="$BASE_ORDERS")
"${SB[@]}" prepare >"$OUT/prepare.txt"

echo "== base: mariadb-backup --backup + --prepare (a physical restore)"
mariadb-backup --backup --user=root --socket="$WORK/src/sock" --target-dir="$WORK/base" 2>"$OUT/base-backup.log"
mariadb-backup --prepare --target-dir="$WORK/base" 2>"$OUT/base-prepare.log"
read -r BASE_FILE BASE_POS BASE_GTID < "$WORK/base/xtrabackup_binlog_info"
echo "   consistent at $BASE_FILE:$BASE_POS (GTID $BASE_GTID)"

echo "== load: ${LOAD_SECONDS} s of checkouts, rate ${RATE}/s, $THREADS connections"
"${SB[@]}" --threads="$THREADS" --rate="$RATE" --time="$LOAD_SECONDS" --report-interval=0 run >"$OUT/load.txt"
TPS=$(awk '/transactions:/ {gsub(/[()]/,"",$3); print $3}' "$OUT/load.txt")
TXNS=$(awk '/transactions:/ {print $2}' "$OUT/load.txt")
sql src -e "FLUSH BINARY LOGS"
LAST_GTID=$(sql src -N -e "SELECT @@gtid_binlog_pos")
WANT=$(checksums src)
# The binlog files from the base's on (the archive a recovery would fetch).
mkdir -p "$WORK/binlogs"
FILES=()
while read -r f; do
  b=$(basename "$f")
  [[ "$b" < "$BASE_FILE" ]] && continue
  cp "$WORK/src/$b" "$WORK/binlogs/$b"; FILES+=("$WORK/binlogs/$b")
done < "$WORK/src/binlog.index"
BINLOG_B=$(( $(du -cb "${FILES[@]}" | tail -1 | cut -f1) - BASE_POS ))
# A GTID about half-way through the load, for the point-in-time check.
D_S_N=${LAST_GTID%%,*}; MID_SEQ=$(( (${D_S_N##*-} + ${BASE_GTID##*-}) / 2 ))
MID_GTID=${D_S_N%-*}-$MID_SEQ
bench_mariadbd_stop "$WORK/src" "$SRC_PID"
echo "   $TXNS checkouts ($TPS/s), binlog to replay $((BINLOG_B / 1048576)) MiB in ${#FILES[@]} file(s), last GTID $LAST_GTID"

# restored: a fresh server on a copy of the base (relay log in $WORK/r).
restored() {
  rm -rf "$WORK/r"; mkdir -p "$WORK/r"
  cp -a "$WORK/base" "$WORK/r/data"
  bench_mariadbd_on "$WORK/r" "$WORK/r/data" "$(free_port)" --server-id=2 --relay-log="$WORK/r/relay" \
    --skip-slave-start "${SERVER_OPTS[@]}"
}
# relay_files: the binlog files as relay logs relay.000001… with their index.
relay_files() {
  local i=0 f
  : > "$WORK/r/relay.index"
  for f in "${FILES[@]}"; do
    i=$((i + 1)); cp "$f" "$WORK/r/$(printf 'relay.%06d' "$i")"
    printf '%s/relay.%06d\n' "$WORK/r" "$i" >> "$WORK/r/relay.index"
  done
}
pipe() { # [STOP OPTION]: mariadb-binlog | mariadb, as pitr.rs runs them
  mariadb-binlog --no-defaults --start-position="$BASE_POS" --disable-log-bin "$@" "${FILES[@]}" \
    | mariadb --no-defaults --binary-mode -S "$WORK/r/sock" -uroot
}
# relay THREADS MODE [FILE POS]: the SQL thread applies the relay logs from
# the base's position, with THREADS parallel workers in MODE; until the
# source's last GTID, or with FILE POS until that position of the source's
# binlog (a point in time: START SLAVE UNTIL, which parallel apply honours).
relay() {
  local until=""
  [ $# -gt 2 ] && until="UNTIL MASTER_LOG_FILE = '$3', MASTER_LOG_POS = $4"
  # MASTER_LOG_FILE/POS name where the relay log starts in the source's binlog: a
  # relay log written by an IO thread says so itself (without it, 10.11's
  # parallel apply crashes comparing an empty log name).
  sql r -e "SET GLOBAL slave_parallel_threads = $1; SET GLOBAL slave_parallel_mode = '$2';
    CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = 9, MASTER_USER = 'none', MASTER_USE_GTID = no,
      MASTER_LOG_FILE = '$BASE_FILE', MASTER_LOG_POS = $BASE_POS,
      RELAY_LOG_FILE = 'relay.000001', RELAY_LOG_POS = $BASE_POS;
    START SLAVE SQL_THREAD $until"
  if [ -n "$until" ]; then
    while [ "$(sql r -e 'SHOW SLAVE STATUS\G' | awk '/Slave_SQL_Running:/ {print $2}')" = Yes ]; do sleep 0.05; done
  else
    local r; r=$(sql r -N -e "SELECT MASTER_GTID_WAIT('$LAST_GTID', 3600)")
    [ "$r" = 0 ] || { sql r -e "SHOW SLAVE STATUS\G" >&2; echo "replay did not reach $LAST_GTID" >&2; exit 1; }
    sql r -e "STOP SLAVE"
  fi
  local err; err=$(sql r -e 'SHOW SLAVE STATUS\G' | sed -n 's/^ *Last_SQL_Error: //p')
  [ -z "$err" ] || { echo "relay:$1:$2 failed: $err" >&2; exit 1; }
}
verify() { # WANT WHAT
  local got; got=$(checksums r)
  [ "$got" = "$1" ] || { echo "REPLAY MISMATCH ($2): $got vs $1" >&2; exit 1; }
}

declare -A T
echo "== replay routes (load average before each)"
for route in $ROUTES; do
  restored
  [[ $route == *+relaxed ]] && sql r -e "SET GLOBAL innodb_flush_log_at_trx_commit = 2"
  [[ $route == relay:* ]] && relay_files
  load=$(cut -d' ' -f1 /proc/loadavg)
  s=$(now)
  case ${route%+relaxed} in
    pipe) pipe ;;
    relay:*) IFS=: read -r _ n mode <<<"${route%+relaxed}"; relay "$n" "$mode" ;;
    *) echo "unknown route $route" >&2; exit 2 ;;
  esac
  T[$route]=$(python3 -c "print(f'{$(now) - $s:.2f}')")
  verify "$WANT" "$route"
  printf '   %-22s %7s s  (%s× real time, load %s)\n' "$route" "${T[$route]}" \
    "$(python3 -c "print(f'{$LOAD_SECONDS / ${T[$route]}:.1f}')")" "$load"
  bench_mariadbd_stop "$WORK/r" "$MARIADBD_PID"
done

echo "== point in time: up to GTID $MID_GTID"
# Where its transaction ends: where the next GTID event starts (file, position).
NEXT_GTID=${MID_GTID%-*}-$((MID_SEQ + 1))
for f in "${FILES[@]}"; do
  MID_POS=$(mariadb-binlog --no-defaults "$f" 2>/dev/null | awk -v g="GTID $NEXT_GTID " '/^# at /{at=$3} index($0, g){p=at} END{print p}')
  [ -n "$MID_POS" ] && { MID_FILE=$(basename "$f"); break; }
done
restored; relay_files
s=$(now); relay 4 optimistic "$MID_FILE" "$MID_POS"; T_UNTIL=$(python3 -c "print(f'{$(now) - $s:.2f}')")
AT=$(sql r -N -e "SELECT @@gtid_slave_pos"); MID_SUM=$(checksums r)
bench_mariadbd_stop "$WORK/r" "$MARIADBD_PID"
restored; pipe --stop-position="$MID_GTID"; PIPE_SUM=$(checksums r)
bench_mariadbd_stop "$WORK/r" "$MARIADBD_PID"
if [ "$AT" = "$MID_GTID" ] && [ "$MID_SUM" = "$PIPE_SUM" ]; then
  UNTIL_OK="equal: relay:4:optimistic with START SLAVE UNTIL MASTER_LOG_FILE='$MID_FILE', MASTER_LOG_POS=$MID_POS (where GTID $NEXT_GTID starts) stopped at $AT in ${T_UNTIL} s with the data of mariadb-binlog --stop-position=$MID_GTID | mariadb"
else
  UNTIL_OK="DIFFERENT: the relay route stopped at $AT (wanted $MID_GTID); checksums $MID_SUM vs $PIPE_SUM"
fi
echo "   $UNTIL_OK"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

TABLE=$( {
  echo "| route | seconds | vs pipe | replay speed (load seconds per second) |"
  echo "|---|---|---|---|"
  for route in $ROUTES; do
    echo "| $route | ${T[$route]} | $(python3 -c "print(f'{${T[pipe]:-${T[$route]}} / ${T[$route]}:.2f}')")× | $(python3 -c "print(f'{$LOAD_SECONDS / ${T[$route]}:.1f}')") |"
  done
} )
echo
echo "$TABLE"
echo
echo "load average before ${LOAD_BEFORE}, after ${LOAD_AFTER}"

if [ "$RECORD" = 1 ]; then
  {
    echo
    echo "### Binlog replay routes, $(date -u +%F) — $(nproc) cores, MariaDB $(mariadbd --version | awk '{print $3}')"
    echo
    echo "\`bench/mysql-replay.sh --record\` (LOAD_SECONDS=$LOAD_SECONDS RATE=$RATE THREADS=$THREADS BASE_ORDERS=$BASE_ORDERS): a base taken with mariadb-backup, then $TXNS checkouts in ${LOAD_SECONDS} s ($TPS/s; bench/mysql-checkout.lua: an order, 1–4 lines, stock of hot products, the customer, an earlier order's status) on a durable source (innodb_flush_log_at_trx_commit=1, sync_binlog=1); $((BINLOG_B / 1048576)) MiB of binlog to replay. Each route: a fresh server on a copy of the base (same settings), the binlog applied, CHECKSUM TABLE equal to the source's. Load average before ${LOAD_BEFORE}, after ${LOAD_AFTER} (2 cores shared with other work)."
    echo
    echo "$TABLE"
    echo
    echo "Point in time: $UNTIL_OK."
  } >> bench/RESULTS.md
  echo "recorded in bench/RESULTS.md"
fi
