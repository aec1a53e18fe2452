#!/usr/bin/env bash
# bench-cache.sh: the index cache's size and the first backup's time and
# peak RSS, two snap binaries alternating (A B A B ...).
#
#   benches/scripts/bench-cache.sh TREE RUNS SNAP_A SNAP_B
#
# Each run backs TREE up into a fresh unencrypted repository with a fresh
# cache (XDG_CACHE_HOME under BENCH_DIR, default /tmp/snap-bench-cache) and
# prints one line: binary, seconds, peak RSS (KiB, time -v's %M), bytes of
# the cache folder (du -sb) and the cache's files; then, with FORCE=1, the
# seconds and peak RSS of a second backup with --force (every file read
# again, every blob found in the cache: lookups that hit). Medians are left
# to the reader (or `sort -k2`).
set -euo pipefail
tree=$1 runs=$2
shift 2
dir=${BENCH_DIR:-/tmp/snap-bench-cache}
mkdir -p "$dir"
for ((i = 1; i <= runs; i++)); do
  for bin in "$@"; do
    rm -rf "$dir/repo" "$dir/cache"
    XDG_CACHE_HOME=$dir/cache "$bin" -r "$dir/repo" init >/dev/null 2>&1
    /usr/bin/time -f '%e %M' -o "$dir/time" \
      env XDG_CACHE_HOME="$dir/cache" "$bin" -r "$dir/repo" backup "$tree" >/dev/null 2>"$dir/err" ||
      { cat "$dir/err" >&2; exit 1; }
    read -r secs rss <"$dir/time"
    bytes=$(du -sb "$dir/cache" | cut -f1)
    files=$(find "$dir/cache" -type f -printf '%f:%s ' | sort)
    again=
    if [[ ${FORCE:-0} == 1 ]]; then
      /usr/bin/time -f '%e %M' -o "$dir/time" \
        env XDG_CACHE_HOME="$dir/cache" "$bin" -r "$dir/repo" backup --force "$tree" >/dev/null 2>"$dir/err" ||
        { cat "$dir/err" >&2; exit 1; }
      again="force: $(cat "$dir/time")"
    fi
    echo "$bin $secs $rss $bytes $files$again"
  done
done
rm -rf "$dir/repo" "$dir/cache"
