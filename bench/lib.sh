# What the benchmark scripts share, sourced first by each
# (`. "$(dirname "$0")/lib.sh"`): strict mode, the repository's root as the
# working directory ($ROOT), the command-line options, installing or
# requiring the tools compared with, the release binaries, free ports,
# background processes stopped on exit, a moto S3 server and throw-away
# mariadbd servers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

# bench_options ALLOWED ARGS…: sets QUICK and RECORD (0 or 1) from ARGS;
# an option that is not in ALLOWED (say "--quick --record") is refused.
bench_options() {
  local allowed=" $1 " a; shift
  QUICK=0; RECORD=0
  for a in "$@"; do
    case "$allowed" in *" $a "*) ;; *) echo "unknown option $a" >&2; exit 2 ;; esac
    case "$a" in
      --quick) QUICK=1 ;;
      --record) RECORD=1 ;;
    esac
  done
}

# bench_install COMMAND[:PACKAGE]…: installs (apt) the packages of the
# commands that are missing; a path names a file that must be executable.
bench_install() {
  local need=() t cmd
  for t in "$@"; do
    cmd=${t%%:*}
    if [[ $cmd == /* ]]; then [ -x "$cmd" ] && continue; else command -v "$cmd" >/dev/null && continue; fi
    need+=("${t#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  return 0
}

# bench_require HINT COMMAND…: stops (exit 1) at the first missing command
# (a path: a file that must be executable), with HINT (how to install it).
bench_require() {
  local hint=$1 t; shift
  for t in "$@"; do
    if [[ $t == /* ]]; then [ -x "$t" ] && continue; else command -v "$t" >/dev/null && continue; fi
    echo "$t is needed${hint:+: $hint}" >&2; exit 1
  done
}

# bench_lifeboat_bin: LIFEBOAT_BIN, else the release build (built, or
# brought up to date, here).
bench_lifeboat_bin() {
  if [ -z "${LIFEBOAT_BIN:-}" ]; then
    cargo build --release --locked -q -p lifeboat-cli
    LIFEBOAT_BIN=$ROOT/target/release/lifeboat
  fi
}

# bench_moto_bin: MOTO, the moto server to run: LIFEBOAT_MOTO_SERVER, else
# the pinned one in .venv-test (installed by scripts/test-tools).
bench_moto_bin() {
  [ -n "${LIFEBOAT_MOTO_SERVER:-}" ] || "$ROOT"/scripts/test-tools
  MOTO=${LIFEBOAT_MOTO_SERVER:-$ROOT/.venv-test/bin/moto_server}
}

# free_port: a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The background processes a script started (it adds each pid to PIDS):
# killed and waited for on exit. A script with more to clean up sets its
# own EXIT trap and calls bench_stop from it.
PIDS=()
bench_stop() {
  local p
  {
    for p in "${PIDS[@]}"; do kill "$p" || true; done
    for p in "${PIDS[@]}"; do wait "$p" || true; done
  } 2>/dev/null
}
trap bench_stop EXIT

# bench_start_moto LOG: a moto server on a free port (MOTO_PORT), its
# request log in LOG, answering before this returns.
bench_start_moto() {
  MOTO_PORT=$(free_port)
  "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" 2> "$1" >/dev/null &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break; sleep 0.2; done
}

# bench_start_mariadb DIR PORT [MARIADBD OPTIONS…]: a throw-away mariadbd
# (binlog on, ROW) with its data, socket (DIR/sock), logs and tmpdir in
# DIR, answering before this returns, without anonymous accounts.
bench_start_mariadb() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir/tmp"
  mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --auth-root-authentication-method=normal \
    --skip-test-db >"$dir/install-db.log" 2>&1
  bench_mariadbd_on "$dir" "$dir/data" "$port" "$@"
  mariadb --no-defaults -S "$dir/sock" -uroot -e "DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES"
}

# bench_mariadbd_on DIR DATADIR PORT [MARIADBD OPTIONS…]: mariadbd on an
# existing data directory (a restored one, say), binlog on (ROW) with its
# socket (DIR/sock), logs and tmpdir in DIR, answering before this returns
# (polled every 50 ms, so that a timed start is measured to that); its pid
# in MARIADBD_PID and PIDS. Stops the script when the server exits first.
bench_mariadbd_on() {
  local dir=$1 datadir=$2 port=$3; shift 3
  mkdir -p "$dir/tmp"
  "$(command -v mariadbd || echo /usr/sbin/mariadbd)" --no-defaults --datadir="$datadir" --port="$port" \
    --bind-address=127.0.0.1 --socket="$dir/sock" --pid-file="$dir/pid" --log-error="$dir/err.log" \
    --tmpdir="$dir/tmp" --user=root --log-bin="$dir/binlog" --binlog-format=ROW "$@" &
  MARIADBD_PID=$!
  PIDS+=($MARIADBD_PID)
  for _ in $(seq 1 1200); do
    mariadb --no-defaults -S "$dir/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && return 0
    kill -0 "$MARIADBD_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "mariadbd on $datadir did not start; the end of $dir/err.log:" >&2
  tail -20 "$dir/err.log" >&2
  exit 1
}

# bench_mariadbd_stop DIR PID: shuts down the server of DIR (socket DIR/sock)
# and waits until its process PID has exited.
bench_mariadbd_stop() {
  mariadb-admin --no-defaults -S "$1/sock" -uroot shutdown >/dev/null 2>&1 || kill "$2" 2>/dev/null || true
  wait "$2" 2>/dev/null || true
}

# The generated shop database of the MySQL benchmarks: `bench` with five
# tables (customers 500k rows, products 100k with blobs, orders, events a
# third of orders' rows with JSON, audit 300k with text).
BENCH_MYSQL_TABLES="bench.customers, bench.products, bench.orders, bench.events, bench.audit"

# bench_mysql_generate ORDERS CLIENT…: creates database `bench` with ORDERS
# rows in its biggest table, through CLIENT… (a mariadb client command
# connected to the server, e.g. a function `sql src`; it gets SQL on stdin
# or `bench -e SQL`), then analyzes the tables.
bench_mysql_generate() {
  local orders=$1; shift
  "$@" <<SQL
CREATE DATABASE bench;
USE bench;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(80), email VARCHAR(120), country CHAR(2), created DATETIME(6), KEY (country));
CREATE TABLE products (id INT PRIMARY KEY, sku VARCHAR(20), title VARCHAR(200), price DECIMAL(10,2), stock INT, image BLOB);
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT, product_id INT, qty INT, price DECIMAL(10,2),
  status ENUM('new','paid','shipped','done'), created_at DATETIME(6), note VARCHAR(200), KEY (customer_id));
CREATE TABLE events (id BIGINT PRIMARY KEY AUTO_INCREMENT, order_id BIGINT, kind VARCHAR(20), payload JSON, at TIMESTAMP(6) NULL);
CREATE TABLE audit (at DATETIME(6), who VARCHAR(40), what TEXT);
INSERT INTO customers SELECT seq, CONCAT('Customer ', seq), CONCAT('c', seq, '@example.com'), ELT(1 + seq % 5, 'DE','FR','US','JP','BR'), '2024-01-01' + INTERVAL seq MINUTE FROM seq_1_to_500000;
INSERT INTO products SELECT seq, CONCAT('SKU-', seq), CONCAT('Product number ', seq, ' ', MD5(seq)), (seq % 9000) / 100 + 1, seq % 500, UNHEX(SHA2(seq, 512)) FROM seq_1_to_100000;
SQL
  local step=2000000 done_rows=0 hi
  while [ "$done_rows" -lt "$orders" ]; do
    hi=$((done_rows + step)); [ "$hi" -gt "$orders" ] && hi=$orders
    "$@" bench -e "INSERT INTO orders SELECT seq, seq % 500003, seq % 100003, 1 + seq % 5, (seq % 10000) / 100,
      1 + seq % 4, '2025-01-01' + INTERVAL seq SECOND, CONCAT('order note ', MD5(seq), ' ', SHA1(seq))
      FROM seq_$((done_rows + 1))_to_$hi"
    done_rows=$hi
  done
  "$@" bench -e "INSERT INTO events (order_id, kind, payload, at) SELECT seq, ELT(1 + seq % 3, 'paid','shipped','done'),
    JSON_OBJECT('order', seq, 'by', CONCAT('user', seq % 97), 'ok', TRUE), '2025-06-01' + INTERVAL seq SECOND FROM seq_1_to_$((orders / 3));
    INSERT INTO audit SELECT '2025-01-01' + INTERVAL seq SECOND, CONCAT('user', seq % 13), REPEAT(MD5(seq), 3) FROM seq_1_to_300000;
    ANALYZE TABLE customers, products, orders, events, audit;"
}

# bench_mysql_checksums CLIENT…: CHECKSUM TABLE of the generated tables, on one line.
bench_mysql_checksums() {
  "$@" -N -e "CHECKSUM TABLE $BENCH_MYSQL_TABLES" | awk '{print $2}' | tr '\n' ' '
}
