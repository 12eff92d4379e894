#!/usr/bin/env bash
# What S3 Object Lock costs per locked binlog seal: the same binlog archive
# (`lifeboat archive mysql --retain-for 1d --lock governance`, one seal a
# second under a steady trickle of commits) into two S3 vaults on one local
# moto server: a bucket without Object Lock (Lifeboat's own retention only)
# and a bucket with Object Lock (every seal point object also gets an object
# retention: `PUT ?retention`). For each: requests to the store per seal
# (from moto's request log), the time to write a seal (the archive's
# `write_ms`, p50/p99/mean), over the same window length.
#
#   bench/objectlock-seal.sh            # RUN_SECONDS (default 30) per bucket
#   bench/objectlock-seal.sh --record   # also append the table to bench/RESULTS.md
#
# Environment: RUN_SECONDS (30), WORK (bench/work/objectlock), LIFEBOAT_BIN
# (default: build release), LIFEBOAT_MOTO_SERVER (default .venv-test/bin/moto_server).
. "$(dirname "$0")/lib.sh"
bench_options "--record" "$@"
RUN_SECONDS=${RUN_SECONDS:-30}
WORK=${WORK:-$ROOT/bench/work/objectlock}
bench_moto_bin
bench_require "" curl mariadb mariadb-install-db python3
bench_lifeboat_bin
LB=$LIFEBOAT_BIN
export LIFEBOAT_PASSWORD=bench-password AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1

rm -rf "$WORK"; mkdir -p "$WORK"

# moto logs one line per request on stderr.
bench_start_moto "$WORK/moto.log"
MPORT=$MOTO_PORT
curl -sf -X PUT "http://127.0.0.1:$MPORT/plain" >/dev/null
curl -sf -X PUT -H 'x-amz-bucket-object-lock-enabled: true' "http://127.0.0.1:$MPORT/locked" >/dev/null

# A throw-away server with the binlog on, and a writer committing every 20 ms.
DB=$WORK/db; DPORT=$(free_port)
bench_start_mariadb "$DB" "$DPORT" --server-id=7
mariadb --no-defaults -S "$DB/sock" -uroot -e \
  "CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6), note VARCHAR(200))"
python3 - "$DB/sock" <<'PY' &
import subprocess, sys, time
p = subprocess.Popen(["mariadb", "--no-defaults", "-S", sys.argv[1], "-uroot"], stdin=subprocess.PIPE, text=True)
while True:
    p.stdin.write("INSERT INTO shop.orders (at, note) VALUES (NOW(6), REPEAT('x', 120));\n"); p.stdin.flush()
    time.sleep(0.02)
PY
PIDS+=($!)

run() { # BUCKET → $WORK/BUCKET.jsonl, $WORK/BUCKET.window (start end log_from log_to)
  local b=$1 url="s3://$1/vault?endpoint=http://127.0.0.1:$MPORT&region=us-east-1"
  "$LB" --vault "$url" vault init -q
  "$LB" --vault "$url" archive mysql --dsn "mysql://root@127.0.0.1:$DPORT" --spool "$WORK/spool-$b" \
    --retain-for 1d --lock governance --json > "$WORK/$b.jsonl" 2> "$WORK/$b.err" &
  local pid=$!; PIDS+=($pid)
  for _ in $(seq 1 300); do grep -q '"event":"sealed"' "$WORK/$b.jsonl" 2>/dev/null && break; sleep 0.2; done
  sleep 2   # past the catch-up
  local from to t0 t1
  from=$(wc -l < "$WORK/moto.log"); t0=$(date +%s.%N)
  sleep "$RUN_SECONDS"
  to=$(wc -l < "$WORK/moto.log"); t1=$(date +%s.%N)
  kill -TERM "$pid"; wait "$pid" || true
  echo "$t0 $t1 $from $to" > "$WORK/$b.window"
}
echo "== archive into a bucket without Object Lock ($RUN_SECONDS s)"; run plain
echo "== archive into a bucket with Object Lock ($RUN_SECONDS s)"; run locked

python3 - "$WORK" > "$WORK/summary.txt" <<'PY'
import json, sys
from datetime import datetime
w = sys.argv[1]
log = open(f"{w}/moto.log", errors="replace").read().splitlines()
def ts(s):
    whole, _, frac = s.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float("0." + (frac or "0"))
rows = {}
for b in ("plain", "locked"):
    t0, t1, l0, l1 = open(f"{w}/{b}.window").read().split()
    t0, t1, l0, l1 = float(t0), float(t1), int(l0), int(l1)
    reqs = [l for l in log[l0:l1] if f" /{b}/" in l or f" /{b}?" in l]
    retention = sum(1 for l in reqs if "retention" in l and '"PUT' in l)
    seals = []
    for line in open(f"{w}/{b}.jsonl"):
        e = json.loads(line)
        if e.get("event") == "sealed" and t0 <= ts(e["sealed_at"]) <= t1:
            seals.append(e["write_ms"])
    seals.sort()
    n = len(seals)
    q = lambda p: seals[min(n - 1, int(p * n))]
    rows[b] = (n, len(reqs) / n, retention / n, q(0.5), q(0.99), sum(seals) / n)
    print(b, *(f"{x:.2f}" if isinstance(x, float) else x for x in rows[b]))
p, l = rows["plain"], rows["locked"]
print("extra", f"{l[1] - p[1]:.2f}", f"{l[5] - p[5]:.2f}")
PY
cat "$WORK/summary.txt"
read -r _ NP RP RETP P50P P99P MEANP < <(grep '^plain' "$WORK/summary.txt")
read -r _ NL RL RETL P50L P99L MEANL < <(grep '^locked' "$WORK/summary.txt")
read -r _ EXTRA_REQ EXTRA_MS < <(grep '^extra' "$WORK/summary.txt")
echo
echo "Object Lock per locked seal: +$EXTRA_REQ requests, +$EXTRA_MS ms mean write time"

if [ "$RECORD" = 1 ]; then
  {
    echo
    echo "### Object Lock cost per locked binlog seal, $(date -u +%F) — $(nproc) cores, moto $("$MOTO" --version 2>/dev/null | awk '{print $NF}') on 127.0.0.1"
    echo
    echo "\`bench/objectlock-seal.sh --record\`: \`archive mysql --retain-for 1d --lock governance\`, a commit every 20 ms, one seal a second, ${RUN_SECONDS} s per bucket; requests counted in moto's log, write time is the archive's \`write_ms\` per seal."
    echo
    echo "| bucket | seals | requests per seal | of them PUT ?retention | write ms p50 | p99 | mean |"
    echo "|---|---|---|---|---|---|---|"
    echo "| no Object Lock | $NP | $RP | $RETP | $P50P | $P99P | $MEANP |"
    echo "| Object Lock | $NL | $RL | $RETL | $P50L | $P99L | $MEANL |"
    echo
    echo "Per locked seal, Object Lock adds $EXTRA_REQ requests and $EXTRA_MS ms of mean write time."
  } >> bench/RESULTS.md
  echo "recorded in bench/RESULTS.md"
fi
