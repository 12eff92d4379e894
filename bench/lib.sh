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
  "$(command -v mariadbd || echo /usr/sbin/mariadbd)" --no-defaults --datadir="$dir/data" --port="$port" \
    --bind-address=127.0.0.1 --socket="$dir/sock" --pid-file="$dir/pid" --log-error="$dir/err.log" \
    --tmpdir="$dir/tmp" --user=root --log-bin="$dir/binlog" --binlog-format=ROW "$@" &
  PIDS+=($!)
  for _ in $(seq 1 300); do mariadb --no-defaults -S "$dir/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
  mariadb --no-defaults -S "$dir/sock" -uroot -e "DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES"
}
