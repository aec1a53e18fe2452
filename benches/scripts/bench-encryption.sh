#!/usr/bin/env bash
# Encrypted vs unencrypted snap backups, and restic (always encrypted), on
# the same data in one run. Two data sets: many small files (python's
# standard library + locale catalogues, ~216 MB, ~9,000 files) where the
# per-file cost of encryption shows, and a few large files (~200 MB).
# Each backup goes to a fresh repository; the runs are interleaved so a
# noisy machine affects every tool alike; the median of RUNS is reported.
#
# Usage: benches/scripts/bench-encryption.sh          (RUNS=3 by default)
# Environment: BENCH_DIR (default /tmp/snap-bench-enc), RUNS, SNAP_BIN,
# BENCH_NO_BUILD=1 to skip cargo build --release.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench-enc}
RUNS=${RUNS:-3}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
[ "${BENCH_NO_BUILD:-0}" = 1 ] || (cd "$ROOT" && cargo build --release --quiet)
command -v restic >/dev/null || { echo "restic is not installed (apt-get install restic)" >&2; exit 2; }

rm -rf "$WORK" && mkdir -p "$WORK"
SMALL=$WORK/small LARGE=$WORK/large
mkdir -p "$SMALL" "$LARGE"
for d in /usr/lib/python3*; do [ -d "$d" ] && cp -r "$d" "$SMALL/"; done
cp -r /usr/share/locale "$SMALL/locale" 2>/dev/null || true
for i in 1 2 3 4; do head -c 50000000 /dev/urandom > "$LARGE/random-$i.bin"; done
echo "passphrase for the benchmark" > "$WORK/pass"
export RESTIC_PASSWORD_FILE=$WORK/pass SNAP_PASSWORD_FILE=$WORK/pass

# Prints the wall time of one backup of $2 with tool $1 to a fresh repository.
run() {
  local tool=$1 data=$2 repo=$WORK/repo-$1
  rm -rf "$repo" "$WORK/restic-cache"
  case $tool in
    plain) "$SNAP" -q -r "$repo" init >/dev/null ;;
    encrypted) "$SNAP" -q -r "$repo" init --encrypt >/dev/null ;;
    restic) restic -q -r "$repo" init >/dev/null ;;
  esac
  local start end
  start=$(date +%s.%N)
  case $tool in
    restic) restic -q -r "$repo" --cache-dir "$WORK/restic-cache" backup "$data" >/dev/null ;;
    *) "$SNAP" -q -r "$repo" backup "$data" >/dev/null ;;
  esac
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The fixed cost of opening an encrypted repository (scrypt for the
# passphrase), measured on an empty one: it is reported, and left out of the
# throughput ratio.
"$SNAP" -q -r "$WORK/open" init --encrypt >/dev/null
open_times=""
for _ in $(seq "$RUNS"); do
  start=$(date +%s.%N); "$SNAP" -q -r "$WORK/open" snapshots >/dev/null; end=$(date +%s.%N)
  open_times+="$(echo "$end - $start" | bc) "
done
OPEN=$(echo $open_times | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf "opening an encrypted repository (passphrase): %.2f s\n\n" "$OPEN"

echo "| data | snap plain (s) | snap encrypted (s) | restic (s) | encrypted/plain throughput (open cost left out) | restic/encrypted (wall) |"
echo "|---|---|---|---|---|---|"
for set in small large; do
  data=$WORK/$set
  # warm the page cache
  cat $(find "$data" -type f) > /dev/null 2>&1 || true
  declare -A times=()
  for tool in plain encrypted restic; do times[$tool]=""; done
  for _ in $(seq "$RUNS"); do
    for tool in plain encrypted restic; do
      times[$tool]+="$(run $tool "$data") "
    done
  done
  p=$(echo ${times[plain]} | tr ' ' '\n' | median)
  e=$(echo ${times[encrypted]} | tr ' ' '\n' | median)
  r=$(echo ${times[restic]} | tr ' ' '\n' | median)
  size=$(du -sh "$data" | cut -f1)
  files=$(find "$data" -type f | wc -l)
  printf "| %s (%s, %s files) | %.2f | %.2f | %.2f | %.0f%% | %.2fx |\n" \
    "$set" "$size" "$files" "$p" "$e" "$r" "$(echo "100 * $p / ($e - $OPEN)" | bc -l)" "$(echo "$r / $e" | bc -l)"
done
rm -rf "$WORK"
