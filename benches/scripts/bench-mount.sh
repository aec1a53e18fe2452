#!/usr/bin/env bash
# Benchmarks `snap mount`:
#   (1) the first `ls` of a folder of latest right after mounting;
#   (2) reading a 100 MB file through the mount (`cat > /dev/null`, a fresh
#       mount each run, so no page cache) against `snap restore` of the same
#       file, and against `restic mount` / `restic restore` of the same data
#       when restic is installed and its mount works here;
#   (3) the peak RSS (VmHWM) of the `snap mount` process after reading a
#       1 GB file through it.
# Prints a Markdown table (also saved as $BENCH_DIR/mount-results-TIMESTAMP.md).
#
# Usage:
#   benches/scripts/bench-mount.sh                 # 100 MB and 1 GB files, 3 runs
#   BIG_MB=200 RUNS=1 benches/scripts/bench-mount.sh   # quicker
#
# Environment:
#   BENCH_DIR       work dir (default /tmp/snap-bench-mount)
#   BIG_MB          size of the large file for (3), in MB (default 1000)
#   RUNS            repetitions of each timed step; the median is reported (default 3)
#   SNAP_BIN        snap binary (default target/release/snap)
#   BENCH_NO_BUILD  set to 1 to skip cargo build --release
#   RESTIC_PASSWORD password of the restic repository (default "snap-bench")
#
# Needs /dev/fuse and fusermount3 (Debian's fuse3). The files are random
# bytes (incompressible: the read cost is decryption-free zstd frames and
# hashing). The repository files stay in the page cache between runs, so
# the numbers compare CPU work, not the disk.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench-mount}
BIG_MB=${BIG_MB:-1000}
RUNS=${RUNS:-3}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-snap-bench}
DATA=$WORK/data
MNT=$WORK/mnt
LOGS=$WORK/logs
export XDG_CACHE_HOME=$WORK/cache
export SNAP_REPO=$WORK/snap-repo
export RESTIC_REPOSITORY=$WORK/restic-repo
export RESTIC_CACHE_DIR=$WORK/restic-cache

say() { printf '==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

command -v fusermount3 >/dev/null || { echo "needs fusermount3 (apt-get install fuse3)" >&2; exit 1; }
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet)
fi

mounted_pid=""
cleanup() {
  fusermount3 -u "$MNT" 2>/dev/null || true
  fusermount -u "$MNT" 2>/dev/null || true
  [ -n "$mounted_pid" ] && kill "$mounted_pid" 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$DATA/docs" "$MNT" "$LOGS"
say "data: a 100 MB and a $BIG_MB MB file of random bytes, and a folder of small files"
head -c $((100 << 20)) /dev/urandom > "$DATA/f100"
head -c $((BIG_MB << 20)) /dev/urandom > "$DATA/big"
cp -r /usr/share/doc/. "$DATA/docs/" 2>/dev/null || true
entries=$(ls -A "$DATA/docs" | wc -l)
files=$(find "$DATA/docs" -type f | wc -l)

say "snap init + backup"
"$SNAP" -q init > "$LOGS/snap-init.log"
"$SNAP" -q backup "$DATA" > "$LOGS/snap-backup.log"

# Starts a mount in the background (command in "$@"), waits for $1 to show.
start_mount() {
  local wait_for=$1; shift
  "$@" > "$LOGS/mount.log" 2>&1 &
  mounted_pid=$!
  for _ in $(seq 600); do
    [ -e "$wait_for" ] && return 0
    sleep 0.05
  done
  echo "the mount did not come up: $(cat "$LOGS/mount.log")" >&2
  kill "$mounted_pid" 2>/dev/null || true
  mounted_pid=""
  return 1
}
stop_mount() {
  fusermount3 -u "$MNT" 2>/dev/null || fusermount -u "$MNT"
  wait "$mounted_pid" 2>/dev/null || true
  mounted_pid=""
}

# time_into FILE CMD...: runs CMD, its output discarded, and appends the
# seconds it took to FILE.
time_into() {
  local file=$1 t0 t1
  shift
  t0=$(now); "$@" > /dev/null 2>&1; t1=$(now)
  printf '%s\n' "$(secs "$t0" "$t1")" >> "$file"
}
mount_snap() { start_mount "$MNT/latest" "$SNAP" mount "$MNT"; }
restore_snap() {
  "$SNAP" -q restore latest:data/f100 --target "$WORK/restored" && cmp "$WORK/restored/f100" "$DATA/f100"
}
mount_restic() { start_mount "$MNT/snapshots/latest" restic mount "$MNT"; }
restore_restic() { restic restore -q latest --include "$DATA/f100" --target "$WORK/restored"; }

# measure TOOL LATEST DATA_PATH: RUNS fresh mounts (so no page cache), each
# timing the first ls of LATEST/, of its data folder of small files, and a
# read of the 100 MB file; then a restore of that file.
measure() {
  local tool=$1 latest=$2 data=$3
  for _ in $(seq "$RUNS"); do
    "mount_$tool" || return 1
    time_into "$LOGS/$tool.latest" ls -l "$latest/"
    time_into "$LOGS/$tool.ls" ls -l "$latest$data/docs"
    time_into "$LOGS/$tool.read" cat "$latest$data/f100"
    stop_mount
    rm -rf "$WORK/restored"
    time_into "$LOGS/$tool.restore" "restore_$tool"
  done
}
# row TOOL LABEL: the table row of the medians.
row() {
  local cells="" what
  for what in latest ls read restore; do
    cells+=" $(median < "$LOGS/$1.$what") |"
  done
  echo "| $2 |$cells"
}

measure snap "$MNT/latest" /data || exit 1
snap_read=$(median < "$LOGS/snap.read")
snap_restore=$(median < "$LOGS/snap.restore")

# (3) peak RSS of the mount while reading the big file.
mount_snap || exit 1
idle_kb=$(awk '/VmHWM/ {print $2}' "/proc/$mounted_pid/status")
t0=$(now); cat "$MNT/latest/data/big" > /dev/null; t1=$(now)
big_read=$(secs "$t0" "$t1")
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$mounted_pid/status")
stop_mount

restic_row=""
if command -v restic >/dev/null; then
  say "restic init + backup of the same data"
  restic init > "$LOGS/restic-init.log" 2>&1
  restic backup -q "$DATA" > "$LOGS/restic-backup.log" 2>&1
  if measure restic "$MNT/snapshots/latest" "$DATA"; then
    restic_row=$(row restic "restic $(restic version | cut -d' ' -f2) mount")
  else
    say "restic mount did not work here; left out"
  fi
fi

mbps() { awk -v s="$1" 'BEGIN {printf "%.0f", 100 / s}'; }
out="$WORK/mount-results-$(date +%Y%m%d-%H%M%S).md"
{
  echo "## snap mount ($(nproc) cores, $RUNS runs, medians; data: 100 MB random file, $files small files, ${BIG_MB} MB random file)"
  echo
  echo "| tool | first ls -l of latest/ (s) | first ls -l of a folder of $entries entries (s) | read 100 MB through the mount (s) | restore of that file (s) |"
  echo "|------|------|------|------|------|"
  row snap "snap mount"
  [ -n "$restic_row" ] && echo "$restic_row"
  echo
  echo "snap: mount read $(mbps "$snap_read") MB/s, restore $(mbps "$snap_restore") MB/s:" \
    "the mount reads at $(awk -v a="$snap_read" -v b="$snap_restore" 'BEGIN {printf "%.0f", 100 * b / a}')% of restore's throughput."
  echo
  echo "Reading the ${BIG_MB} MB file through the mount: ${big_read} s; peak RSS of snap mount: $((hwm_kb / 1024)) MiB (after mounting, before the read: $((idle_kb / 1024)) MiB)."
} | tee "$out"
