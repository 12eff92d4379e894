#!/usr/bin/env bash
# Copy benchmark: Lifeboat vs restic, side by side, in one run, on the same
# data. A files point (≥ 2 GB generated data) in a directory vault is copied
# to an S3 vault on a local moto server; then 5 % of the files change, a new
# point is made, and it is copied again. restic does the same between a local
# repository and an S3 repository made with `init --copy-chunker-params`.
# Wall time and peak RSS per copy; bytes read (Lifeboat's own figure) and the
# growth of the S3 target (measured with rclone, for both tools).
#
#   bench/copy.sh             # BENCH_GEN_GB (default 2) GB of generated data
#   bench/copy.sh --quick     # 0.2 GB smoke run
#   bench/copy.sh --record    # also append the table to bench/RESULTS.md
#
# Environment: BENCH_DIR (default bench/work), LIFEBOAT_BIN (default: build
# release), LIFEBOAT_MOTO_SERVER (default .venv-test/bin/moto_server).
. "$(dirname "$0")/lib.sh"
bench_options "--quick --record" "$@"
BENCH_DIR=${BENCH_DIR:-$ROOT/bench/work}
GEN_GB=${BENCH_GEN_GB:-2}
[ "$QUICK" = 1 ] && GEN_GB=0.2
bench_moto_bin
bench_require "" restic rclone curl
bench_require "apt-get install time" /usr/bin/time
bench_lifeboat_bin

W=$BENCH_DIR/copy; rm -rf "$W"; mkdir -p "$W"
DATA=$W/data
echo "== generating $GEN_GB GB"
python3 "$ROOT/bench/gen_data.py" "$DATA" "$GEN_GB"

bench_start_moto /dev/null
PORT=$MOTO_PORT
curl -s -X PUT "http://127.0.0.1:$PORT/bench" >/dev/null
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
S3URL="s3://bench/lifeboat?endpoint=http://127.0.0.1:$PORT&region=us-east-1"
s3_bytes() {  # bytes stored under a prefix of the bucket (rclone fails on plain HTTP with a CA bundle set)
  env -u AWS_CA_BUNDLE rclone size --json ":s3:bench/$1" --s3-provider Other --s3-endpoint "http://127.0.0.1:$PORT" \
    --s3-access-key-id bench --s3-secret-access-key bench 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])'
}
timed() {  # timed NAME CMD…: "%e %M" into $W/NAME.time, stdout into $W/NAME.out
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/$name.time" "$@" >"$W/$name.out" 2>"$W/$name.err" || { cat "$W/$name.err" >&2; exit 1; }
}

export LIFEBOAT_PASSWORD=primary-bench-password LIFEBOAT_TO_PASSWORD=secondary-bench-password
export RESTIC_PASSWORD=primary-bench-password RESTIC_FROM_PASSWORD=primary-bench-password
LB=$LIFEBOAT_BIN
echo "== primaries: first backups"
$LB --vault "$W/lb-primary" vault init -q
$LB --vault "$W/lb-primary" backup files "$DATA" -q
restic -r "$W/restic-primary" init -q
restic -r "$W/restic-primary" backup -q "$DATA"
echo "== secondaries (paired chunker parameters)"
LIFEBOAT_PASSWORD=$LIFEBOAT_TO_PASSWORD LIFEBOAT_FROM_PASSWORD=primary-bench-password \
  $LB --vault "$S3URL" vault init -q --copy-chunker-params-from "$W/lb-primary"
RESTIC_PASSWORD=secondary-bench-password restic -r "s3:http://127.0.0.1:$PORT/bench/restic" init -q \
  --from-repo "$W/restic-primary" --copy-chunker-params
echo "== first copies"
timed lb1 $LB copy --from "$W/lb-primary" --to "$S3URL" --all --json
lb_s3_1=$(s3_bytes lifeboat)
RESTIC_PASSWORD=secondary-bench-password timed r1 restic -r "s3:http://127.0.0.1:$PORT/bench/restic" copy -q --from-repo "$W/restic-primary"
r_s3_1=$(s3_bytes restic)
echo "== 5 % of the files change; new points"
python3 "$ROOT/bench/gen_data.py" --mutate "$DATA" 0.05
$LB --vault "$W/lb-primary" backup files "$DATA" --json > "$W/lb-backup2.json"
restic -r "$W/restic-primary" backup -q "$DATA"
echo "== second copies"
timed lb2 $LB copy --from "$W/lb-primary" --to "$S3URL" --all --json
lb_s3_2=$(s3_bytes lifeboat)
RESTIC_PASSWORD=secondary-bench-password timed r2 restic -r "s3:http://127.0.0.1:$PORT/bench/restic" copy -q --from-repo "$W/restic-primary"
r_s3_2=$(s3_bytes restic)

TABLE=$(W=$W GEN_GB=$GEN_GB LB1S3=$lb_s3_1 LB2S3=$lb_s3_2 R1S3=$r_s3_1 R2S3=$r_s3_2 LB="$LB" python3 - <<'PY'
import json, os, subprocess
w = os.environ["W"]
def t(n): e, m = open(f"{w}/{n}.time").read().split()[-2:]; return float(e), int(m) / 1024
def j(n): return json.load(open(f"{w}/{n}.out"))
changed = json.load(open(f"{w}/lb-backup2.json"))["bytes_new"]
l1, l2, r1, r2 = t("lb1"), t("lb2"), t("r1"), t("r2")
c1, c2 = j("lb1"), j("lb2")
s = {k: int(os.environ[k]) for k in ("LB1S3", "LB2S3", "R1S3", "R2S3")}
mib = lambda b: f"{b / 1048576:.1f}"
ver = lambda c: subprocess.run(c, capture_output=True, text=True).stdout.strip().splitlines()[0]
out = [f"Data: {os.environ['GEN_GB']} GB generated (bench/gen_data.py); 5 % of the files changed = {mib(changed)} MiB new plaintext (Lifeboat's backup figure).",
       f"Versions: {ver([os.environ['LB'], '--version'])}; {ver(['restic', 'version'])}. Target: moto S3 on 127.0.0.1.", "",
       "| copy | Lifeboat time | restic time | speed vs restic | Lifeboat read MiB | Lifeboat sent MiB | S3 growth Lifeboat / restic MiB | peak RSS Lifeboat / restic MiB |",
       "|---|---|---|---|---|---|---|---|"]
for name, l, r, c, g in [("first", l1, r1, c1, (s["LB1S3"], s["R1S3"])), ("after 5 % changed", l2, r2, c2, (s["LB2S3"] - s["LB1S3"], s["R2S3"] - s["R1S3"]))]:
    out.append(f"| {name} | {l[0]:.2f} s | {r[0]:.2f} s | {r[0] / l[0]:.2f}× | {mib(c['bytes_read'])} | {mib(c['bytes_sent'])} | {mib(g[0])} / {mib(g[1])} | {l[1]:.0f} / {r[1]:.0f} |")
out.append("")
out.append(f"Second copy: read {c2['bytes_read'] / max(changed, 1):.2f}× and sent {c2['bytes_sent'] / max(changed, 1):.2f}× the changed bytes (target ≤ 1.1×); {r2[0] / l2[0]:.2f}× restic's speed (target ≥ 2×).")
print("\n".join(out))
PY
)
echo; echo "$TABLE"
if [ "$RECORD" = 1 ]; then
  { echo; echo "## Copy benchmark ($(date -u +%Y-%m-%d), bench/copy.sh)"; echo; echo "$TABLE"; } >> "$ROOT/bench/RESULTS.md"
fi
