#!/usr/bin/env bash
# Time `snap diff` on a large tree with a small change (and `restic diff` on
# the same data when restic is installed), and `snap log PATH` over many
# snapshots.
#
# Usage:
#   benches/scripts/bench-diff.sh
#   FILES=20000 LOG_SNAPSHOTS=200 RUNS=3 benches/scripts/bench-diff.sh   # quicker
#
# Environment:
#   BENCH_DIR       work dir (default /tmp/snap-bench-diff); emptied first
#   FILES           tiny files in the diff tree (default 100000), 100 per folder
#   CHANGED         files changed between the two snapshots (default 10)
#   LOG_SNAPSHOTS   snapshots for the log benchmark (default 1000)
#   RUNS            timed repetitions; the median is reported (default 5)
#   SNAP_BIN        snap binary (default target/release/snap, built first)
#   BENCH_NO_BUILD  set to 1 to skip cargo build --release
#   RESTIC_PASSWORD password of the restic repository (default "snap-bench")
#
# What is measured (wall seconds, warm page cache, median of RUNS):
#   (a) snap diff A B    two snapshots of FILES tiny files differing in CHANGED files
#   (b) restic diff A B  the same two states backed up with restic (if installed)
#   (c) snap log PATH    over LOG_SNAPSHOTS snapshots of a tiny tree: every
#                        snapshot changes one file, every 10th changes PATH
# Targets: (a) < 0.2 s and at least 5x faster than (b); (c) < 1 s.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench-diff}
FILES=${FILES:-100000}
CHANGED=${CHANGED:-10}
LOG_SNAPSHOTS=${LOG_SNAPSHOTS:-1000}
RUNS=${RUNS:-5}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-snap-bench}
export TZ=UTC

if [ "${BENCH_NO_BUILD:-0}" != 1 ] && [ -z "${SNAP_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
fi

SNAP=$(cd "$(dirname "$SNAP")" && pwd)/$(basename "$SNAP")

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"

# Median wall time in seconds of RUNS runs of "$@" (output discarded).
median() {
  local times=()
  for _ in $(seq "$RUNS"); do
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    times+=("$(awk "BEGIN { print $end - $start }")")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{ t[NR] = $1 } END { printf "%.3f\n", t[int((NR + 1) / 2)] }'
}

echo "== building a tree of $FILES tiny files"
DIRS=$(( (FILES + 99) / 100 ))
for ((d = 0; d < DIRS; d++)); do
  dir=tree/dir$((d / 100))/sub$d
  mkdir -p "$dir"
  for ((f = 0; f < 100 && d * 100 + f < FILES; f++)); do
    echo "file $d/$f" > "$dir/f$f.txt"
  done
done

snap() { "$SNAP" -q -r "$WORK/snap-repo" "$@"; }
snap init >/dev/null
snap backup tree --time 2026-01-01T00:00:00Z >/dev/null
HAVE_RESTIC=0
if command -v restic >/dev/null; then
  HAVE_RESTIC=1
  restic -q -r "$WORK/restic-repo" init >/dev/null
  restic -q -r "$WORK/restic-repo" backup tree >/dev/null
fi

echo "== changing $CHANGED files"
for ((i = 0; i < CHANGED; i++)); do
  d=$(( (i * 7919) % DIRS ))
  echo "changed $i" >> "tree/dir$((d / 100))/sub$d/f$((i % 100)).txt"
done
snap backup tree --time 2026-01-02T00:00:00Z >/dev/null
if [ $HAVE_RESTIC = 1 ]; then
  restic -q -r "$WORK/restic-repo" backup tree >/dev/null
fi

echo "== timing diff (median of $RUNS)"
lines=$(snap diff latest~1 latest | wc -l)
snap_diff=$(median snap diff latest~1 latest)
echo "snap diff:   ${snap_diff}s ($((lines - 1)) changes)"
restic_diff=""
if [ $HAVE_RESTIC = 1 ]; then
  mapfile -t ids < <(restic -q -r "$WORK/restic-repo" snapshots --json |
    python3 -c 'import json, sys; [print(s["id"]) for s in json.load(sys.stdin)]')
  restic_diff=$(median restic -q -r "$WORK/restic-repo" diff "${ids[0]}" "${ids[1]}")
  echo "restic diff: ${restic_diff}s"
  echo "speedup:     $(awk "BEGIN { printf \"%.1f\", $restic_diff / $snap_diff }")x"
else
  echo "restic not installed: skipped (apt-get install -y restic)"
fi

echo "== building $LOG_SNAPSHOTS snapshots of a tiny tree"
mkdir -p small/docs small/notes small/other
for i in $(seq 20); do echo "other $i" > "small/other/o$i.txt"; done
echo "tracked 0" > small/docs/tracked.md
logrepo() { "$SNAP" -q -r "$WORK/log-repo" "$@"; }
logrepo init >/dev/null
start=$(date +%s)
for ((i = 0; i < LOG_SNAPSHOTS; i++)); do
  echo "change $i" > small/notes/changing.txt
  if ((i % 10 == 0)); then echo "tracked $i" > small/docs/tracked.md; fi
  logrepo backup small --time "$(date -u -d "@$((1767225600 + i * 3600))" +%Y-%m-%dT%H:%M:%SZ)" >/dev/null
done
echo "($LOG_SNAPSHOTS backups took $(( $(date +%s) - start ))s)"

echo "== timing log (median of $RUNS)"
versions=$(logrepo --json log small/docs/tracked.md | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
snap_log=$(median logrepo log small/docs/tracked.md)
echo "snap log:    ${snap_log}s ($versions versions over $LOG_SNAPSHOTS snapshots)"
find_time=$(median logrepo find 'tracked.md')
echo "snap find:   ${find_time}s (tracked.md over $LOG_SNAPSHOTS snapshots)"

echo
echo "| measurement | seconds | target |"
echo "|---|---|---|"
echo "| snap diff, $FILES files, $CHANGED changed | $snap_diff | < 0.2 |"
if [ -n "$restic_diff" ]; then
  echo "| restic diff, same data | $restic_diff | snap >= 5x faster |"
fi
echo "| snap log PATH, $LOG_SNAPSHOTS snapshots | $snap_log | < 1 |"
echo "| snap find GLOB, $LOG_SNAPSHOTS snapshots | $find_time | - |"
