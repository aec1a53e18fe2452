#!/usr/bin/env bash
# SQLite growth benchmark: a ~50 MB conversations database in WAL
# mode, one "session" (500 inserted rows, 20 updated), backed up by snap and
# restic in one run. Prints repository growth per scenario and capture time
# against `cp`.
#   benches/scripts/bench-sqlite.sh            (SIZE_MB=50 by default)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SIZE_MB=${SIZE_MB:-50}
work=${WORK:-/tmp/snap-bench-sqlite}
snap=${SNAP:-$here/../../target/release/snap}
[ -x "$snap" ] || (cd "$here/../.." && cargo build --release -q)
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
export RESTIC_PASSWORD=bench
rm -rf "$work"; mkdir -p "$work/entity"
python3 "$here/gen-conversations.py" create "$work/base.db" "$SIZE_MB"
size() { du -sb --exclude=cache "$1" | cut -f1; }
kib() { echo $(( $1 / 1024 )); }

run() { # tool scenario
  local tool=$1 scenario=$2 repo=$work/repo-$1-$2
  rm -rf "$repo" "$work/entity"; mkdir -p "$work/entity"; cp "$work/base.db" "$work/entity/conversations.db"
  case $tool in
    snap) "$snap" -r "$repo" init -q ${SNAP_INIT_ARGS:-} >/dev/null ;;
    restic) restic -q init -r "$repo" >/dev/null ;;
  esac
  local started; started=$(date +%s.%N)
  case $tool in
    snap) "$snap" -r "$repo" backup -q "$work/entity" ;;
    restic) restic -q -r "$repo" backup --compression auto "$work/entity" >/dev/null ;;
  esac
  python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$started" "$(date +%s.%N)" > "$work/first-$tool-$scenario"
  local before; before=$(size "$repo")
  local holder=""
  if [ "$scenario" = checkpointed ]; then
    python3 "$here/gen-conversations.py" session "$work/entity/conversations.db"
  else
    python3 "$here/gen-conversations.py" session-wal "$work/entity/conversations.db" 60 > "$work/ready" &
    holder=$!
    until grep -q ready "$work/ready" 2>/dev/null; do sleep 0.2; done
  fi
  case $tool in
    snap) "$snap" -r "$repo" backup -q "$work/entity" || true ;;
    restic) restic -q -r "$repo" backup --compression auto "$work/entity" >/dev/null ;;
  esac
  [ -n "$holder" ] && kill "$holder" 2>/dev/null; wait 2>/dev/null || true
  echo $(( $(size "$repo") - before ))
}

echo "| scenario | snap added | restic added | snap/restic |"
echo "|---|---|---|---|"
for scenario in checkpointed wal; do
  s=$(run snap $scenario); r=$(run restic $scenario)
  echo "| $scenario | $(kib "$s") KiB | $(kib "$r") KiB | $(python3 -c "print(round($s/$r, 2))") |"
done
echo
for scenario in checkpointed wal; do
  echo "first backup ($scenario run): snap $(cat "$work/first-snap-$scenario")s, restic $(cat "$work/first-restic-$scenario")s"
done

# Capture time against cp (warm cache), medians of 5.
cp "$work/base.db" "$work/entity/conversations.db"
t_cp=$(python3 - "$work" <<'PY'
import subprocess, sys, time, statistics
w = sys.argv[1]
ts = []
for _ in range(5):
    t = time.perf_counter(); subprocess.run(["cp", f"{w}/entity/conversations.db", f"{w}/copy.db"], check=True); ts.append(time.perf_counter() - t)
print(round(statistics.median(ts), 3))
PY
)
timing=$(cd "$here/../.." && SNAP_BENCH_DB="$work/entity/conversations.db" cargo test -q --release --lib -- --ignored sqlite_capture_timing --nocapture 2>/dev/null || true)
t_cap=$(echo "$timing" | grep -oE 'capture_s=[0-9.]+' | cut -d= -f2)
t_train=$(echo "$timing" | grep -oE 'train_s=[0-9.]+' | cut -d= -f2)
echo
echo "cp of the database: ${t_cp}s; snap capture (online backup API into a temporary file): ${t_cap:-n/a}s; dictionary training (first backup only): ${t_train:-n/a}s"
