#!/usr/bin/env bash
# MySQL/MariaDB protector benchmark, all tools side by side in one run:
#   snapshot:  lifeboat backup mysql  vs  mariadb-dump > file  vs  mydumper -t 4
#   restore:   lifeboat restore mysql vs  mariadb < file       vs  myloader -t 4
#   archive:   commit → sealed-in-the-vault lag (p50/p99) under a sustained write load
# on a generated database of SIZE_GB (default 2.5) GB of dump text: several
# tables, one large. Every restore is checked with CHECKSUM TABLE against the
# source. Servers are throw-away mariadbd instances (same settings for every
# tool). Usage: bench/mysql.sh [--record]   (--record appends to bench/RESULTS.md)
# Environment: SIZE_GB (2.5), LAG_SECONDS (60), WORK (bench/work/mysql), KEEP_WORK=1 keeps the data.
. "$(dirname "$0")/lib.sh"
bench_options "--record" "$@"
SIZE_GB=${SIZE_GB:-2.5}
WORK=${WORK:-$ROOT/bench/work/mysql}
LAG_SECONDS=${LAG_SECONDS:-60}
export LIFEBOAT_PASSWORD=bench-password LIFEBOAT_VAULT=file://$WORK/vault
bench_require "apt-get install mariadb-server mariadb-client mydumper sysbench zstd" \
  /usr/sbin/mariadbd mariadb-dump mydumper myloader sysbench zstd
echo "== building lifeboat (release)"
bench_lifeboat_bin
LB=$LIFEBOAT_BIN

rm -rf "$WORK"; mkdir -p "$WORK"
# Servers stop on exit; the data (gigabytes) goes too unless KEEP_WORK=1; logs stay.
cleanup() {
  bench_stop
  [ "${KEEP_WORK:-}" = 1 ] || rm -rf "$WORK"/{src,dst,vault,spool,mydumper,dump.sql,dump.sql.zst}
}
trap cleanup EXIT

start_server() { # NAME → sets PORT_NAME
  local name=$1 port; port=$(free_port)
  bench_start_mariadb "$WORK/$name" "$port" --server-id=$((RANDOM + 1)) \
    --innodb-buffer-pool-size=4G --innodb-log-file-size=1G --max-allowed-packet=256M
  eval "PORT_$name=$port"
}
sql() { local name=$1; shift; mariadb --no-defaults -S "$WORK/$name/sock" -uroot "$@"; }
now() { date +%s.%N; }

start_server src; start_server dst
echo "== generating about ${SIZE_GB} GB (dump text) in database bench"
ORDERS=$(python3 -c "print(int($SIZE_GB * 1e9 * 0.72 / 150))")
bench_mysql_generate "$ORDERS" sql src
DATA_MB=$(sql src -N -e "SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM information_schema.TABLES WHERE table_schema = 'bench'")
ROWS=$(sql src -N -e "SELECT SUM(table_rows) FROM information_schema.TABLES WHERE table_schema = 'bench'")
# Warm the buffer pool for every tool alike.
sql src bench -e "SELECT COUNT(*), SUM(LENGTH(note)) FROM orders; SELECT COUNT(*) FROM events; SELECT COUNT(*) FROM audit" >/dev/null
checksums() { bench_mysql_checksums sql "$1"; }
SRC_SUM=$(checksums src)

declare -A T
timeit() { local k=$1; shift; local s; s=$(now); "$@" >/dev/null; T[$k]=$(python3 -c "print(f'{$(now) - $s:.2f}')"); echo "   $k: ${T[$k]} s"; }
verify() { local got; got=$(checksums dst); [ "$got" = "$SRC_SUM" ] || { echo "RESTORE MISMATCH ($1): $got vs $SRC_SUM" >&2; exit 1; }; }
reset_dst() { sql dst -e "DROP DATABASE IF EXISTS bench"; sql dst -e "RESET MASTER"; }

echo "== snapshot ($DATA_MB MiB of data and indexes, $ROWS rows)"
timeit dump_mariadb bash -c "mariadb-dump --no-defaults -S '$WORK/src/sock' -uroot --single-transaction --quick --databases bench > '$WORK/dump.sql'"
DUMP_MB=$(( $(stat -c %s "$WORK/dump.sql") / 1048576 ))
# What a compressed dump (the least a backup keeps) costs, for context.
timeit dump_mariadb_zstd bash -c "mariadb-dump --no-defaults -S '$WORK/src/sock' -uroot --single-transaction --quick --databases bench | zstd -q -1 -T0 > '$WORK/dump.sql.zst'"
ZST_MB=$(( $(stat -c %s "$WORK/dump.sql.zst") / 1048576 ))
timeit dump_mydumper mydumper -h 127.0.0.1 -P "$PORT_src" -u root -B bench -t 4 -o "$WORK/mydumper"
"$LB" vault init -q
timeit dump_lifeboat "$LB" backup mysql --dsn "mysql://root@127.0.0.1:$PORT_src" --databases bench -q
VAULT_MB=$(( $(du -sb "$WORK/vault" | cut -f1) / 1048576 ))
sql src bench -e "UPDATE orders SET status = 'done' WHERE id % 100 = 0"   # 1 % of the big table changes
timeit dump_lifeboat_again "$LB" backup mysql --dsn "mysql://root@127.0.0.1:$PORT_src" --databases bench -q
SRC_SUM=$(checksums src)   # the restores below use the newest snapshot and a new dump
timeit dump_mariadb_again bash -c "mariadb-dump --no-defaults -S '$WORK/src/sock' -uroot --single-transaction --quick --databases bench > '$WORK/dump.sql'"
rm -rf "$WORK/mydumper"; mydumper -h 127.0.0.1 -P "$PORT_src" -u root -B bench -t 4 -o "$WORK/mydumper"

echo "== restore into an empty server (binlog on, as a new primary's would be)"
reset_dst; timeit load_mariadb bash -c "mariadb --no-defaults -S '$WORK/dst/sock' -uroot < '$WORK/dump.sql'"; verify mariadb
reset_dst; timeit load_myloader myloader -h 127.0.0.1 -P "$PORT_dst" -u root -d "$WORK/mydumper" -t 4 -o; verify myloader
reset_dst; timeit load_lifeboat "$LB" restore mysql latest --dsn "mysql://root@127.0.0.1:$PORT_dst" -q; verify lifeboat

echo "== archive lag under a sustained write load (${LAG_SECONDS} s)"
sql src -e "CREATE DATABASE sbtest; CREATE TABLE bench.probe (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))"
sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$PORT_src" --mysql-user=root --mysql-db=sbtest \
  --tables=4 --table-size=50000 prepare >/dev/null
"$LB" archive mysql --dsn "mysql://root@127.0.0.1:$PORT_src" --spool "$WORK/spool" --json > "$WORK/archive.jsonl" 2> "$WORK/archive.err" &
ARCH=$!; PIDS+=($ARCH)
# Steady state only: the archive first catches up on the binlog of the data
# generation (hundreds of MB); lag is measured once it reports "caught up".
for _ in $(seq 1 600); do grep -q '"through":"' "$WORK/archive.jsonl" 2>/dev/null && break; sleep 0.5; done
sysbench oltp_write_only --mysql-host=127.0.0.1 --mysql-port="$PORT_src" --mysql-user=root --mysql-db=sbtest \
  --tables=4 --table-size=50000 --threads=2 --rate=200 --time="$((LAG_SECONDS + 5))" run > "$WORK/sysbench.txt" &
SB=$!; PIDS+=($SB)
python3 - "$WORK/src/sock" "$LAG_SECONDS" > "$WORK/probes.txt" <<'PY'
import subprocess, sys, time
sock, secs = sys.argv[1], float(sys.argv[2])
p = subprocess.Popen(["mariadb", "--no-defaults", "-S", sock, "-uroot", "-N", "-B", "--unbuffered"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
end = time.time() + secs
while time.time() < end:
    p.stdin.write("INSERT INTO bench.probe (at) VALUES (NOW(6)); SELECT @@last_gtid, UNIX_TIMESTAMP(NOW(6));\n"); p.stdin.flush()
    print(p.stdout.readline().strip(), flush=True)
    time.sleep(0.05)
p.stdin.close(); p.wait()
PY
wait "$SB" || true
sleep 4; kill -TERM "$ARCH"; wait "$ARCH" || true
LAG=$(python3 - "$WORK/probes.txt" "$WORK/archive.jsonl" <<'PY'
import json, sys
from datetime import datetime
probes = []
for line in open(sys.argv[1]):
    g, t = line.split()
    probes.append((int(g.split("-")[2]), float(t)))
seals = []
for line in open(sys.argv[2]):
    e = json.loads(line)
    if e["event"] == "sealed" and e.get("last_gtid"):
        whole, _, frac = e["sealed_at"].rstrip("Z").partition(".")
        t = datetime.fromisoformat(whole + "+00:00").timestamp() + float("0." + (frac or "0"))
        seals.append((int(e["last_gtid"].split("-")[2]), t))
lags = []
for seq, committed in probes:
    s = next((t for g, t in seals if g >= seq), None)
    if s is not None:
        lags.append(s - committed)
lags.sort()
q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))]
print(f"{q(0.5):.2f} {q(0.99):.2f} {max(lags):.2f} {len(lags)} {len(probes)}")
PY
)
read -r LAG50 LAG99 LAGMAX NLAG NPROBE <<<"$LAG"
TPS=$(awk '/transactions:/ {gsub(/[()]/,"",$3); print $3}' "$WORK/sysbench.txt")
echo "   lag p50 ${LAG50} s, p99 ${LAG99} s, max ${LAGMAX} s over ${NLAG}/${NPROBE} probes; background ${TPS} tps"

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
R_DUMP=$(ratio "${T[dump_mariadb]}" "${T[dump_lifeboat]}")
R_LOAD=$(ratio "${T[load_mariadb]}" "${T[load_lifeboat]}")
echo
echo "snapshot: lifeboat ${T[dump_lifeboat]} s vs mariadb-dump ${T[dump_mariadb]} s (${R_DUMP}x, target >= 2x), mydumper ${T[dump_mydumper]} s"
echo "restore:  lifeboat ${T[load_lifeboat]} s vs mariadb < dump ${T[load_mariadb]} s (${R_LOAD}x, target >= 3x), myloader ${T[load_myloader]} s"
echo "archive:  lag p99 ${LAG99} s (target <= 5 s)"

if [ "$RECORD" = 1 ]; then
  {
    echo
    echo "### MySQL benchmark, $(date -u +%F) — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), MariaDB $(sql src -N -e 'SELECT @@version')"
    echo
    echo "Data: database \`bench\`, 5 tables (orders: $(printf "%'d" "$ORDERS") rows), $ROWS rows, $DATA_MB MiB data+indexes, mariadb-dump file $DUMP_MB MiB; vault after the first snapshot $VAULT_MB MiB. Servers: 4 GiB buffer pool (warm), binlog on (ROW). \`bench/mysql.sh --record\`."
    echo
    echo "| step | lifeboat | mariadb-dump / mariadb | mydumper / myloader -t 4 | lifeboat vs mariadb |"
    echo "|---|---|---|---|---|"
    echo "| snapshot | ${T[dump_lifeboat]} s | ${T[dump_mariadb]} s | ${T[dump_mydumper]} s | ${R_DUMP}x (target ≥ 2x) |"
    echo "| snapshot after 1 % of orders changed | ${T[dump_lifeboat_again]} s | ${T[dump_mariadb_again]} s | | |"
    echo "| (context) mariadb-dump \\| zstd -1 -T0 | | ${T[dump_mariadb_zstd]} s, $ZST_MB MiB | | |"
    echo "| restore into an empty server | ${T[load_lifeboat]} s | ${T[load_mariadb]} s | ${T[load_myloader]} s | ${R_LOAD}x (target ≥ 3x) |"
    echo
    echo "Archive lag (commit → sealed in the vault), ${NLAG} probe commits over ${LAG_SECONDS} s with sysbench oltp_write_only at ${TPS} tps: p50 ${LAG50} s, p99 ${LAG99} s, max ${LAGMAX} s (target p99 ≤ 5 s)."
  } >> bench/RESULTS.md
  echo "recorded in bench/RESULTS.md"
fi
