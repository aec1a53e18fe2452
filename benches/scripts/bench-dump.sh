#!/usr/bin/env bash
# Time `snap dump` of the peer dataset as a tar archive against `restic dump`
# and `borg export-tar` of the same data, one run each, with peak RSS, and
# print a Markdown table (also saved as $BENCH_DIR/dump-results-TIMESTAMP.md).
#
# Usage:
#   benches/scripts/bench-dump.sh                     # the ~1 GB peer dataset
#   BENCH_SCALE=small benches/scripts/bench-dump.sh   # ~100 MB, quick
#
# The dataset is the one benches/scripts/bench-peers.sh generates into
# $BENCH_DIR/pristine (made here through that script when missing, with no
# tool run). Each tool backs it up into a fresh repository (untimed; snap and
# borg unencrypted, restic encrypted as it always is), then writes the whole
# snapshot as one tar file into $BENCH_DIR/dump-out, timed under
# /usr/bin/time -v ("Maximum resident set size" is the peak RSS):
#   snap         snap dump latest > FILE
#   snap-output  snap dump latest --output FILE   (atomic: temporary file, fsync, rename)
#   restic       restic dump latest / > FILE
#   borg    borg export-tar REPO::ARCHIVE FILE
# The page cache is warm (the data is read once before the backups), and
# `sync` runs, untimed, before each dump. snap's archive is then unpacked
# and compared with the data (diff -r; the SQLite database by content), and
# every archive's entry count is listed. Environment: BENCH_DIR, BENCH_SCALE, SNAP_BIN, BENCH_NO_BUILD and
# RESTIC_PASSWORD as for bench-peers.sh; TOOLS (default "snap restic borg",
# borg only when installed).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-snap-bench}
TOOLS=${TOOLS:-snap restic$(command -v borg >/dev/null && echo ' borg')}
PRISTINE=$WORK/pristine
DUMP=$WORK/dump
OUT=$WORK/dump-out
export BORG_BASE_DIR=$DUMP/borg-base
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
RESTIC_CACHE=$DUMP/restic-cache

say() { printf '==> %s\n' "$*" >&2; }

if [[ ${BENCH_NO_BUILD:-0} != 1 && -z ${SNAP_BIN:-} ]]; then
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet)
fi
if ! ls "$PRISTINE"/.generated-* >/dev/null 2>&1; then
  say "generating the peer dataset through bench-peers.sh (no tool runs)"
  # Its empty report may fail; the dataset is what is wanted from it.
  TOOLS=" " RUNS=1 BENCH_NO_BUILD=1 SNAP_BIN=$SNAP "$ROOT/benches/scripts/bench-peers.sh" >/dev/null || true
  ls "$PRISTINE"/.generated-* >/dev/null 2>&1 || { echo "no dataset in $PRISTINE" >&2; exit 1; }
fi
DATA_MB=$(du -sm "$PRISTINE" | cut -f1)

rm -rf "$DUMP" "$OUT"
mkdir -p "$DUMP" "$OUT"
# Read everything once so no tool pays for a cold page cache.
tar -cf - -C "$PRISTINE" system entity | cat >/dev/null

# timed KEY COMMAND...: runs COMMAND under /usr/bin/time -v; records
# "seconds peak_rss_kib" in $DUMP/KEY.time, or FAIL.
timed() {
  local key=$1 start end
  shift
  sync
  start=$(date +%s%N)
  if /usr/bin/time -v -o "$DUMP/$key.rusage" "$@" >"$DUMP/$key.log" 2>&1; then
    end=$(date +%s%N)
    echo "$(awk -v ns=$((end - start)) 'BEGIN {printf "%.2f", ns / 1e9}') \
$(awk -F': ' '/Maximum resident set size/ {print $2}' "$DUMP/$key.rusage")" >"$DUMP/$key.time"
  else
    echo FAIL >"$DUMP/$key.time"
    say "FAILED: $key (log: $DUMP/$key.log)"
    tail -n 5 "$DUMP/$key.log" >&2 || true
  fi
  # Size and entry count now, and only snap's archive kept (for the
  # comparison below), so the disk holds at most two archives at a time.
  local archive=$OUT/$key.tar
  if [[ -s $archive ]]; then
    echo "$(du -m "$archive" | cut -f1) $(tar -tf "$archive" | wc -l)" >"$DUMP/$key.info"
  else
    echo "0 0" >"$DUMP/$key.info"
  fi
  [[ $key == snap ]] || rm -f "$archive"
}

for tool in $TOOLS; do
  repo=$DUMP/repo-$tool
  say "$tool: backup (untimed), then dump as tar"
  case $tool in
    snap)
      export XDG_CACHE_HOME=$DUMP/snap-cache
      "$SNAP" -r "$repo" init >"$DUMP/$tool.init.log" 2>&1
      "$SNAP" -r "$repo" backup -q "$PRISTINE/system" "$PRISTINE/entity" >"$DUMP/$tool.backup.log" 2>&1
      # To standard output like the others, then with --output, which
      # also pays for fsync (the page cache flushed to disk) before rename.
      timed snap bash -c 'exec "$1" -r "$2" dump latest >"$3"' _ "$SNAP" "$repo" "$OUT/snap.tar"
      timed snap-output "$SNAP" -r "$repo" dump latest --output "$OUT/snap-output.tar"
      ;;
    restic)
      restic -r "$repo" --cache-dir "$RESTIC_CACHE" init >"$DUMP/$tool.init.log" 2>&1
      restic -r "$repo" --cache-dir "$RESTIC_CACHE" --compression auto \
        backup "$PRISTINE/system" "$PRISTINE/entity" >"$DUMP/$tool.backup.log" 2>&1
      timed restic bash -c 'exec restic -r "$1" --cache-dir "$2" dump latest / >"$3"' \
        _ "$repo" "$RESTIC_CACHE" "$OUT/restic.tar"
      ;;
    borg)
      borg init --encryption none "$repo" >"$DUMP/$tool.init.log" 2>&1
      borg create -C zstd,3 "$repo::a" "$PRISTINE/system" "$PRISTINE/entity" >"$DUMP/$tool.backup.log" 2>&1
      timed borg borg export-tar "$repo::a" "$OUT/borg.tar"
      ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
done

verdict="not checked"
if [[ -s $OUT/snap.tar ]]; then
  say "unpacking snap's archive and comparing it with the data"
  rm -rf "$DUMP/unpacked" && mkdir -p "$DUMP/unpacked"
  tar -xf "$OUT/snap.tar" -C "$DUMP/unpacked"
  # The database was captured as a consistent copy, equal by content but
  # not byte for byte (as in bench-peers.sh); immutable=1 keeps sqlite3 from
  # writing next to the source.
  if diff -r --no-dereference --exclude='conversations.db*' "$PRISTINE/system" "$DUMP/unpacked/system" >/dev/null &&
    diff -r --no-dereference --exclude='conversations.db*' "$PRISTINE/entity" "$DUMP/unpacked/entity" >/dev/null &&
    cmp -s <(sqlite3 "file:$PRISTINE/entity/conversations.db?immutable=1" .dump) \
      <(sqlite3 "file:$DUMP/unpacked/entity/conversations.db?immutable=1" .dump); then
    verdict="identical to the data (the SQLite database equal by content)"
  else
    verdict="DIFFERS from the data"
  fi
  rm -rf "$DUMP/unpacked"
fi

report() {
  echo "## dump of the peer dataset as tar ($DATA_MB MB, $(nproc) cores, one run)"
  echo
  echo "| tool | seconds | peak RSS | archive | entries |"
  echo "|------|---------|----------|---------|---------|"
  local rows=$TOOLS
  [[ " $TOOLS " == *" snap "* ]] && rows=${rows/snap/snap snap-output}
  for tool in $rows; do
    read -r secs rss <"$DUMP/$tool.time" || true
    if [[ $secs == FAIL ]]; then
      echo "| $tool | FAIL | | | |"
      continue
    fi
    local size entries
    read -r size entries <"$DUMP/$tool.info"
    echo "| $tool | $secs | $((rss / 1024)) MiB | $size MB | $entries |"
  done
  echo
  echo "snap's archive unpacked: $verdict."
}

result=$WORK/dump-results-$(date +%Y%m%d-%H%M%S).md
report | tee "$result"
rm -rf "$OUT"
say "saved to $result"
