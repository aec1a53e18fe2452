#!/usr/bin/env bash
# Benchmarks `snap check`:
#   (1) `snap check --read-data` against `restic check --read-data` on the same data;
#   (2) plain `snap check` of a repository with 1,000 snapshots.
# Prints a Markdown table (also saved as $BENCH_DIR/check-results-TIMESTAMP.md).
#
# Usage:
#   benches/scripts/bench-check.sh                         # ~1 GB of data, 1,000 snapshots, 3 runs
#   BENCH_SCALE=small RUNS=3 benches/scripts/bench-check.sh   # ~150 MB, quick
#
# Environment:
#   BENCH_DIR      work dir (default /tmp/snap-bench-check): data, repositories, logs
#   BENCH_SCALE    full (default, ~1 GB) or small (~150 MB)
#   BENCH_MB       size of the data for (1): a copy of /usr/lib/python3*, /usr/share
#                  (text, compressible) plus 1/4 random bytes (incompressible);
#                  default 1000 (full) / 150 (small)
#   SNAPSHOTS      snapshots in the repository for (2) (default 1000)
#   RUNS           repetitions of each timed check; the median is reported (default 3)
#   SNAP_BIN       snap binary (default target/release/snap, built with cargo build --release)
#   BENCH_NO_BUILD set to 1 to skip cargo build --release
#   RESTIC_PASSWORD  password of the restic repository (default "snap-bench")
#
# Caches are not dropped (that needs root): the data and the repositories
# are read once before timing, so both tools see a warm page cache and the
# numbers compare CPU work (hashing, decompression, decryption), not the disk.
# restic always encrypts (AES-256 + Poly1305); snap is measured both
# unencrypted and encrypted (age: ChaCha20-Poly1305), so the comparison is
# fair either way. restic keeps its cache in the work dir.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=bench-lib.sh
source "$ROOT/benches/scripts/bench-lib.sh"
WORK=${BENCH_DIR:-/tmp/snap-bench-check}
SCALE=${BENCH_SCALE:-full}
case $SCALE in
  full) MB=${BENCH_MB:-1000} ;;
  small) MB=${BENCH_MB:-150} ;;
  *) echo "BENCH_SCALE must be full or small, not '$SCALE'" >&2; exit 2 ;;
esac
SNAPSHOTS=${SNAPSHOTS:-1000}
RUNS=${RUNS:-3}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-snap-bench}
PASSWORD_FILE=$WORK/password
DATA=$WORK/data
REPOS=$WORK/repos
LOGS=$WORK/logs
RESTIC_CACHE=$WORK/restic-cache

command -v restic >/dev/null || {
  say "restic is missing; installing it (apt-get install -y restic)"
  apt-get install -y restic >/dev/null
}
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  say "building snap (release)"
  (cd "$ROOT" && cargo build --release --quiet)
fi

mkdir -p "$WORK" "$LOGS"
printf '%s\n' "$RESTIC_PASSWORD" > "$PASSWORD_FILE"


# --- (1) read-data against restic -----------------------------------------

if [[ ! -f $DATA/.complete-$MB ]]; then
  say "preparing ${MB} MB of data in $DATA"
  rm -rf "$DATA"; mkdir -p "$DATA/system" "$DATA/random"
  text_mb=$((MB * 3 / 4))
  for src in /usr/lib/python3* /usr/share; do
    [[ -d $src ]] || continue
    have=$(du -sm "$DATA/system" | cut -f1)
    (( have >= text_mb )) && break
    cp -r --no-preserve=ownership "$src" "$DATA/system/" 2>/dev/null || true
  done
  # Trim to size: remove the largest folders until under the budget.
  while (( $(du -sm "$DATA/system" | cut -f1) > text_mb )); do
    victim=$(find "$DATA/system" -mindepth 2 -maxdepth 3 -type d -print0 | xargs -0 du -sm 2>/dev/null | sort -n | tail -1 | cut -f2)
    rm -rf "$victim"
  done
  rand_mb=$((MB - $(du -sm "$DATA/system" | cut -f1)))
  for ((i = 0; i < rand_mb / 8 + 1; i++)); do
    head -c $((8 << 20)) /dev/urandom > "$DATA/random/blob-$i.bin"
  done
  touch "$DATA/.complete-$MB"
fi
data_mb=$(du -sm --exclude=.complete-* "$DATA" | cut -f1)

rm -rf "$REPOS" "$RESTIC_CACHE"; mkdir -p "$REPOS"
say "backing up $data_mb MB with snap (plain and encrypted) and restic"
"$SNAP" -q -r "$REPOS/snap" init > /dev/null
"$SNAP" -q -r "$REPOS/snap" backup "$DATA" > /dev/null
"$SNAP" -q -r "$REPOS/snap-enc" --password-file "$PASSWORD_FILE" init --encrypt > /dev/null
"$SNAP" -q -r "$REPOS/snap-enc" --password-file "$PASSWORD_FILE" backup "$DATA" > /dev/null
restic -q -r "$REPOS/restic" --cache-dir "$RESTIC_CACHE" init > /dev/null
restic -q -r "$REPOS/restic" --cache-dir "$RESTIC_CACHE" backup "$DATA" > /dev/null
cat "$REPOS"/*/data/*/* > /dev/null 2>&1 || true   # warm the page cache

snap_repo_mb=$(du -sm "$REPOS/snap/data" | cut -f1)
restic_repo_mb=$(du -sm "$REPOS/restic/data" | cut -f1)
say "timing check --read-data ($RUNS runs each)"
t_snap=$(timed snap-read "$SNAP" -q -r "$REPOS/snap" check --read-data)
t_snap_enc=$(timed snap-enc-read "$SNAP" -q -r "$REPOS/snap-enc" --password-file "$PASSWORD_FILE" check --read-data)
t_restic=$(timed restic-read restic -q -r "$REPOS/restic" --cache-dir "$RESTIC_CACHE" check --read-data)
t_snap_plain=$(timed snap-plain "$SNAP" -q -r "$REPOS/snap" check)
t_restic_plain=$(timed restic-plain restic -q -r "$REPOS/restic" --cache-dir "$RESTIC_CACHE" check)

# --- (2) plain check of many snapshots ------------------------------------

MANY=$WORK/many-src
say "making $SNAPSHOTS snapshots (one file edited before each)"
rm -rf "$MANY"; mkdir -p "$MANY"
for d in $(seq 1 20); do
  mkdir -p "$MANY/dir-$d"
  for f in $(seq 1 25); do
    head -c $((1000 + RANDOM % 20000)) /dev/urandom | base64 > "$MANY/dir-$d/note-$f.md"
  done
done
"$SNAP" -q -r "$REPOS/many" init > /dev/null
for n in $(seq 1 "$SNAPSHOTS"); do
  echo "edit $n" >> "$MANY/dir-$((n % 20 + 1))/note-$((n % 25 + 1)).md"
  "$SNAP" -q -r "$REPOS/many" backup "$MANY" > /dev/null
done
count=$("$SNAP" -r "$REPOS/many" --json snapshots | grep -c '"short_id"')
t_many=$(timed snap-many "$SNAP" -q -r "$REPOS/many" check)
many_summary=$("$SNAP" -r "$REPOS/many" check | tail -2 | head -1)

speedup=$(awk -v s="$t_snap" -v r="$t_restic" 'BEGIN {printf "%.1f", r / s}')
speedup_enc=$(awk -v s="$t_snap_enc" -v r="$t_restic" 'BEGIN {printf "%.1f", r / s}')
report=$WORK/check-results-$(date +%Y%m%d-%H%M%S).md
{
  echo "# snap check benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $SCALE scale, median of $RUNS)"
  echo
  echo "Data: $data_mb MB (3/4 system files, 1/4 random). Stored: snap $snap_repo_mb MB, restic $restic_repo_mb MB."
  echo
  echo "| command | wall s | peak RSS MiB |"
  echo "|---------|-------:|-------------:|"
  echo "| snap check --read-data | $t_snap | $(peak_rss_mib snap-read) |"
  echo "| snap check --read-data (encrypted repo) | $t_snap_enc | $(peak_rss_mib snap-enc-read) |"
  echo "| restic check --read-data | $t_restic | $(peak_rss_mib restic-read) |"
  echo "| snap check | $t_snap_plain | $(peak_rss_mib snap-plain) |"
  echo "| restic check | $t_restic_plain | $(peak_rss_mib restic-plain) |"
  echo "| snap check, $count snapshots | $t_many | $(peak_rss_mib snap-many) |"
  echo
  echo "read-data speed-up over restic: ${speedup}x (unencrypted), ${speedup_enc}x (encrypted); target >= 2x"
  echo "plain check of $count snapshots: ${t_many} s (target < 2 s); $many_summary"
} | tee "$report"
say "saved $report"
