#!/usr/bin/env bash
# Unishop benchmark: the baseline every recovery drill runs against.
# A throw-away MariaDB (binlog on, durable commits: the settings a protected
# shop runs with) and unishop (release build) with its frontend in a directory
# bucket; then wrk against the product list, checkout (POST /api/orders via
# bench/unishop-checkout.lua), /health and the frontend page, and finally the
# load generator at a steady rate (the drills' own workload).
#
#   bench/unishop.sh            # print the table
#   bench/unishop.sh --record   # also append it to bench/RESULTS.md
#
# Environment: BENCH_DIR (default bench/work), BENCH_SECONDS (wrk run length,
# default 15), BENCH_CONNECTIONS (default 32), BENCH_THREADS (default 2),
# BENCH_PRODUCTS (default 50), BENCH_LOAD_RATE (default 200 orders/s).
. "$(dirname "$0")/lib.sh"
bench_options "--record" "$@"
SECONDS_RUN=${BENCH_SECONDS:-15}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
PRODUCTS=${BENCH_PRODUCTS:-50}
LOAD_RATE=${BENCH_LOAD_RATE:-200}
W=${BENCH_DIR:-$ROOT/bench/work}/unishop

# --- what the benchmark needs --------------------------------------------------
bench_install wrk mariadb-install-db:mariadb-server mariadb:mariadb-client npm
FRONTEND=$ROOT/crates/unishop/frontend
[ -f "$FRONTEND/node_modules/.package-lock.json" ] || npm ci --prefix "$FRONTEND" --no-audit --no-fund --loglevel=error >/dev/null
cargo build --release --locked -q -p unishop
BIN=$ROOT/target/release/unishop

rm -rf "$W"; mkdir -p "$W/results"
OUT=$W/results

# --- database, shop, data -------------------------------------------------------
echo "== MariaDB (binlog on, innodb_flush_log_at_trx_commit=1)"
DB_PORT=$(free_port)
bench_start_mariadb "$W/db" "$DB_PORT" --server-id=1 \
  --innodb-buffer-pool-size=256M --innodb-log-file-size=256M --max-connections=200
export UNISHOP_DATABASE_URL=mysql://root@127.0.0.1:$DB_PORT/unishop
export UNISHOP_BUCKET=file://$W/bucket
mkdir -p "$W/bucket"
"$BIN" publish-frontend --frontend "$FRONTEND"
"$BIN" seed --products "$PRODUCTS" --stock 100000000 --restock

echo "== unishop serve"
UNISHOP_LOG=warn "$BIN" serve --listen 127.0.0.1:0 >"$W/serve.out" 2>"$W/serve.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^unishop listening on //p' "$W/serve.out")
curl -sf "$URL/health" >/dev/null || { echo "shop not healthy"; cat "$W/serve.err"; exit 1; }

# --- wrk --------------------------------------------------------------------------
bench() { # NAME PATH [SCRIPT [SCRIPT ARGS…]]
  local name=$1 path=$2; shift 2
  local script=()
  if [ $# -gt 0 ]; then script=(-s "$1"); shift; fi
  echo "== wrk $name ($THREADS threads, $CONNS connections, ${SECONDS_RUN}s)"
  wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" --latency "${script[@]}" "$URL$path" -- "$@" | tee "$OUT/$name.wrk"
}
bench products /api/products
orders_before=$(mariadb --no-defaults -S "$W/db/sock" -uroot -N -e 'SELECT COUNT(*) FROM unishop.orders')
bench checkout /api/orders "$ROOT/bench/unishop-checkout.lua" "$PRODUCTS"
orders_after=$(mariadb --no-defaults -S "$W/db/sock" -uroot -N -e 'SELECT COUNT(*) FROM unishop.orders')
echo $((orders_after - orders_before)) > "$OUT/checkout.orders"
bench health /health
bench page /

echo "== unishop load at $LOAD_RATE orders/s for ${SECONDS_RUN}s"
"$BIN" load --url "$URL" --rate "$LOAD_RATE" --duration "${SECONDS_RUN}s" --log "$W/load.log" --json > "$OUT/load.json"
"$BIN" verify --log "$W/load.log" --json > "$OUT/verify.json"

python3 - "$OUT" "$RECORD" "$ROOT/bench/RESULTS.md" "$THREADS" "$CONNS" "$SECONDS_RUN" "$PRODUCTS" "$LOAD_RATE" "$BIN" <<'PY'
import datetime, json, os, platform, re, subprocess, sys
out, record, results, threads, conns, secs, products, rate, binary = sys.argv[1:10]
record = record == "1"

def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v

def wrk(name):
    t = open(f"{out}/{name}.wrk").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", t).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    errs = re.search(r"Socket errors: (.*)", t)
    notes = []
    if non2xx: notes.append(f"{non2xx.group(1)} non-2xx")
    if errs: notes.append("socket errors: " + errs.group(1))
    return rps, p50, p99, total, ", ".join(notes) or "none"

def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception: return "?"

lines = []
p = lines.append
p(f"### Unishop benchmark, {datetime.date.today()} — {os.cpu_count()} cores, "
  f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.platform()}")
p("")
p(f"Data: {products} products (the default seed); MariaDB with binlog (ROW) and durable commits "
  f"(innodb_flush_log_at_trx_commit=1), unishop release build, frontend in a directory bucket; "
  f"wrk {threads} threads, {conns} connections, {secs} s per row, all on the same machine.  ")
mariadb = re.search(r"Distrib (\S+?),", ver(['mariadb', '--version']))
wrkv = ver(['wrk', '-v']).split(' [')[0]
p(f"Versions: {ver([binary, '--version'])}; MariaDB {mariadb.group(1) if mariadb else '?'}; {wrkv}")
p("")
p("| workload | requests/s | p50 ms | p99 ms | requests | errors |")
p("|---|---|---|---|---|---|")
for name, label in [("products", "`GET /api/products` (50 products, 10 KiB JSON)"),
                    ("checkout", "`POST /api/orders` (checkout, 1 product)"),
                    ("health", "`GET /health` (database ping + bucket stat)"),
                    ("page", "`GET /` (index.html read from the bucket)")]:
    rps, p50, p99, total, notes = wrk(name)
    p(f"| {label} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {total} | {notes} |")
load = json.load(open(f"{out}/load.json"))
verify = json.load(open(f"{out}/verify.json"))
p(f"| `unishop load --rate {rate}` (steady, {secs} s) | {load['committed_per_second']:.0f} | "
  f"{load['latency']['p50_ms']:.2f} | {load['latency']['p99_ms']:.2f} | {load['attempted']} | "
  f"{load['failed']} failed |")
p("")
checkout = open(f"{out}/checkout.wrk").read()
answers = re.search(r"checkout answers: (.*)", checkout).group(1)
p(f"Checkout answers: {answers}; orders the database gained during the checkout run: "
  f"{open(f'{out}/checkout.orders').read().strip()} (wrk does not count the answers still in flight when it "
  f"stops). Load log verified against the database: "
  f"{verify['present']} of {verify['orders_in_log']} present, {verify['missing']} missing.")
text = "\n".join(lines)
print()
print(text)
if record:
    ends = open(results).read()[-2:] if os.path.exists(results) else "\n\n"
    with open(results, "a") as f:
        f.write(("" if ends == "\n\n" else "\n" if ends.endswith("\n") else "\n\n") + text + "\n")
    print(f"\nrecorded in {results}")
PY
