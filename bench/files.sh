#!/usr/bin/env bash
# Files benchmark: Lifeboat vs restic vs borg, side by side, in one run, on the
# same data: first backup, no-change incremental, incremental after changing
# 5 % of the files, full restore; wall time, peak RSS, repository size. One
# table per data set: the Rust toolchain (many small files) and the generated
# mixed set (large files), each with its own fresh repositories.
#
#   bench/files.sh            # full run: Rust toolchain copy, then ≥ 2 GB generated mixed data
#   bench/files.sh --quick    # smoke run: 200 MB generated data, no toolchain
#   bench/files.sh --record   # also append the table to bench/RESULTS.md
#
# Environment: BENCH_DIR (default bench/work), BENCH_GEN_GB (default 2),
# BENCH_TOOLS (default "lifeboat restic borg"), LIFEBOAT_BIN (default: build release).
. "$(dirname "$0")/lib.sh"
bench_options "--quick --record" "$@"

BENCH_DIR=${BENCH_DIR:-$ROOT/bench/work}
GEN_GB=${BENCH_GEN_GB:-2}
TOOLS=${BENCH_TOOLS:-"lifeboat restic borg"}
[ "$QUICK" = 1 ] && GEN_GB=0.2

# --- what the benchmark needs ------------------------------------------------
bench_install restic borg:borgbackup /usr/bin/time:time
bench_lifeboat_bin

mkdir -p "$BENCH_DIR"
DATA=$BENCH_DIR/data

# --- data ----------------------------------------------------------------------
marker="$DATA/.complete-$GEN_GB-$QUICK"
if [ ! -f "$marker" ]; then
  echo "== generating data ($GEN_GB GB generated$([ "$QUICK" = 0 ] && echo ' + Rust toolchain'))"
  rm -rf "$DATA"; mkdir -p "$DATA"
  if [ "$QUICK" = 0 ]; then
    cp -a "$(rustc --print sysroot)" "$DATA/toolchain"
  fi
  python3 "$ROOT/bench/gen_data.py" "$DATA/generated" "$GEN_GB"
  touch "$marker"
fi
# A pristine state to reset to, so every run starts from the same data.
python3 "$ROOT/bench/gen_data.py" --reset "$DATA/generated"   # puts back any set (the originals live in $DATA/.originals)

export LIFEBOAT_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export LIFEBOAT_VAULT=$BENCH_DIR/repo-lifeboat RESTIC_REPOSITORY=$BENCH_DIR/repo-restic
export BORG_REPO=$BENCH_DIR/repo-borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# run STEP TOOL CMD...: times CMD, records "seconds rss_kib"
run() {
  local step=$1 tool=$2; shift 2
  if ! /usr/bin/time -f "%e %M" -o "$OUT/$step.$tool" "$@" >"$OUT/$step.$tool.log" 2>&1; then
    echo "$tool $step failed:"; tail -20 "$OUT/$step.$tool.log"; exit 1
  fi
  printf '   %-9s %-10s %8ss  %6s MiB\n' "$tool" "$step" "$(cut -d' ' -f1 "$OUT/$step.$tool")" "$(( $(cut -d' ' -f2 "$OUT/$step.$tool") / 1024 ))"
}

backup() {
  local step=$1 tool=$2
  case $tool in
    lifeboat) run "$step" lifeboat "$LIFEBOAT_BIN" backup files "$SET" --quiet ;;
    restic) run "$step" restic restic backup -q "$SET" ;;
    borg) run "$step" borg borg create --compression zstd,3 "::$step" "$SET" ;;
  esac
}

restore() {
  local tool=$1 to=$BENCH_DIR/restore-$1
  rm -rf "$to"; mkdir -p "$to"
  case $tool in
    lifeboat) run restore lifeboat "$LIFEBOAT_BIN" restore files latest --to "$to" --quiet ;;
    restic) run restore restic restic restore -q latest --target "$to" ;;
    borg) (cd "$to" && run restore borg borg extract "::incremental") ;;
  esac
  local got
  got=$(du -sb "$to" | cut -f1)
  echo "$got" > "$OUT/restored.$tool"
  rm -rf "$to"
}

# bench_set NAME DIR: the whole sequence on one data set, fresh repositories.
bench_set() {
  NAME=$1 SET=$2
  OUT=$BENCH_DIR/results/$NAME
  rm -rf "$OUT" "$BENCH_DIR"/repo-* "$BENCH_DIR"/restore-*
  mkdir -p "$OUT"
  SIZE=$(du -sb "$SET" | cut -f1)
  FILES=$(find "$SET" -type f | wc -l)
  ENTRIES=$(find "$SET" | wc -l)
  echo "== data set $NAME: $FILES files ($ENTRIES entries), $((SIZE / 1048576)) MiB in $SET"
  find "$SET" -type f -print0 | xargs -0 cat >/dev/null   # warm the page cache for every tool alike
  echo "== init"
  for t in $TOOLS; do
    case $t in
      lifeboat) "$LIFEBOAT_BIN" vault init --quiet ;;
      restic) restic init -q ;;
      borg) borg init --encryption=repokey-blake2 ;;
    esac
  done
  echo "== first backup";                   for t in $TOOLS; do backup first "$t"; done
  echo "== no-change incremental";          for t in $TOOLS; do backup nochange "$t"; done
  echo "== change 5 % of the files";        python3 "$ROOT/bench/gen_data.py" --mutate "$SET" 0.05
  echo "== incremental after the change";   for t in $TOOLS; do backup incremental "$t"; done
  echo "== full restore of the latest";     for t in $TOOLS; do restore "$t"; done
  for t in $TOOLS; do du -sb "$BENCH_DIR/repo-$t" | cut -f1 > "$OUT/size.$t"; done
  python3 "$ROOT/bench/gen_data.py" --reset "$SET"
  table "$NAME" "$ENTRIES"
}

table() {
python3 - "$OUT" "$SIZE" "$FILES" "$TOOLS" "$RECORD" "$ROOT/bench/RESULTS.md" "$1" "$2" <<'PY'
import os, subprocess, sys, datetime, platform
out, size, files, tools, record, results, name, entries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5] == "1", sys.argv[6], sys.argv[7], int(sys.argv[8])
def get(step, tool):
    s, m = open(f"{out}/{step}.{tool}").read().split()
    return float(s), int(m) / 1024
def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception: return "?"
mib = size / 1048576
lines = []
p = lines.append
p(f"### Files benchmark ({name}), {datetime.date.today()} — {os.cpu_count()} cores, "
  f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.platform()}")
p("")
desc = {"toolchain": "a copy of the Rust toolchain (`rustc --print sysroot`): many small files", "generated": "the generated mixed set: large, medium and small files"}.get(name, name)
p(f"Data set **{name}**: {files} files ({entries} entries), {mib:.0f} MiB — {desc}; page cache warm for all tools.  ")
p(f"Versions: {ver([os.environ.get('LIFEBOAT_BIN', 'target/release/lifeboat'), '--version'])}; {ver(['restic', 'version'])}; {ver(['borg', '--version'])}")
p("")
hdr = "| step | " + " | ".join(f"{t} s (MiB/s)" for t in tools) + " | " + " | ".join(f"{t} RSS MiB" for t in tools) + " |"
if "lifeboat" in tools and "restic" in tools: hdr += " lifeboat vs restic |"
p(hdr)
p("|" + "---|" * (hdr.count("|") - 1))
for step, label in [("first", "first backup"), ("nochange", "no-change incremental"), ("incremental", "incremental after 5 % changed"), ("restore", "full restore")]:
    row = f"| {label} | "
    cells, rss = [], []
    for t in tools:
        s, m = get(step, t)
        cells.append(f"{s:.2f} ({mib / s:.0f})" if s > 0 else "0")
        rss.append(f"{m:.0f}")
    row += " | ".join(cells) + " | " + " | ".join(rss) + " |"
    if "lifeboat" in tools and "restic" in tools:
        l, r = get(step, "lifeboat")[0], get(step, "restic")[0]
        if step == "nochange":
            row += f" time {l / r:.2f}× of restic's |"
        else:
            row += f" {r / l:.2f}× restic's speed |"
    p(row)
p("| repository size MiB | " + " | ".join(f"{int(open(f'{out}/size.{t}').read()) / 1048576:.0f}" for t in tools) + " | " + " | ".join("" for t in tools) + (" |" if True else "") + (" |" if "lifeboat" in tools and "restic" in tools else ""))
if "lifeboat" in tools and "restic" in tools:
    lm = max(get(s, "lifeboat")[1] for s in ("first", "nochange", "incremental", "restore"))
    rm = max(get(s, "restic")[1] for s in ("first", "nochange", "incremental", "restore"))
    p("")
    p(f"Peak RSS over all steps: lifeboat {lm:.0f} MiB, restic {rm:.0f} MiB ({lm / rm:.2f}×).")
text = "\n".join(lines)
print()
print(text)
if record:
    new = not os.path.exists(results)
    with open(results, "a") as f:
        if new:
            f.write("# Benchmark results\n\nFigures measured by the scripts in bench/, newest last. Each table comes from one run, all tools side by side on the same data.\n\n")
        f.write(text + "\n\n")
    print(f"\nrecorded in {results}")
PY
}

if [ "$QUICK" = 0 ]; then bench_set toolchain "$DATA/toolchain"; fi
bench_set generated "$DATA/generated"
