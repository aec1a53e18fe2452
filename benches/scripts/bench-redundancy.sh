#!/usr/bin/env bash
# What storing every tree and chunk list twice (the metadata-twice feature)
# costs on the peer dataset: repository size and first-backup time, with a
# snap that stores metadata twice against one that stores it once (a build
# from before the feature), alternating, medians of $RUNS.
#
# Usage:
#   SNAP_BASE_BIN=/path/to/older/snap benches/scripts/bench-redundancy.sh
#
# Environment:
#   BENCH_DIR       work dir (default /tmp/snap-bench); the data is
#                   $BENCH_DIR/pristine, made by
#                   `BENCH_GENERATE_ONLY=1 benches/scripts/bench-peers.sh`
#                   (generated here the same way when missing)
#   SNAP_BIN        snap that stores metadata twice (default target/release/snap,
#                   built with cargo build --release unless BENCH_NO_BUILD=1)
#   SNAP_BASE_BIN   snap from before metadata-twice (required: for example a
#                   release build of the commit before the feature)
#   RUNS            runs of each (default 3), alternating base and twice
#
# Printed: per binary, the median first-backup seconds, the repository size
# (du -sb), the bytes of metadata packs (packs holding no data chunk), and
# the ratios twice/base.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench}
RUNS=${RUNS:-3}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
BASE=${SNAP_BASE_BIN:?set SNAP_BASE_BIN to a snap from before metadata-twice}
TOOLS=snap
LOGS=$WORK/redundancy-logs
RES=$WORK/redundancy-results
# shellcheck source=bench-lib.sh
source "$ROOT/benches/scripts/bench-lib.sh"

build_snap
[[ -x $BASE ]] || { echo "no snap binary at $BASE" >&2; exit 1; }
if [[ ! -d $WORK/pristine ]]; then
  BENCH_DIR=$WORK BENCH_GENERATE_ONLY=1 BENCH_NO_BUILD=1 SNAP_BIN=$SNAP \
    "$ROOT/benches/scripts/bench-peers.sh"
fi
rm -rf "$LOGS" "$RES"
mkdir -p "$LOGS" "$RES"
export XDG_CACHE_HOME=$WORK/redundancy-cache
# Warm the page cache once, so neither binary pays for the first read.
tar -cf - -C "$WORK" pristine | cat >/dev/null

# metadata_bytes REPO: bytes of the packs of the unencrypted REPO that hold
# no data chunk. A pack's trailer (its last 4 bytes give the length of the
# zstd frame before them, FORMAT.md "Packs") lists each blob's kind as the
# MessagePack string "data", "tree" or "list".
metadata_bytes() {
  python3 - "$1" <<'PY'
import os, struct, subprocess, sys
total = 0
for dirpath, _, files in os.walk(os.path.join(sys.argv[1], "data")):
    for name in files:
        path = os.path.join(dirpath, name)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(size - 4)
            (length,) = struct.unpack("<I", f.read(4))
            f.seek(size - 4 - length)
            frame = f.read(length)
        body = subprocess.run(["zstd", "-dc"], input=frame, capture_output=True, check=True).stdout
        if b"\xa4data" not in body:
            total += size
print(total)
PY
}

one_run() { # one_run NAME BIN RUN
  local name=$1 bin=$2 run=$3 repo=$WORK/redundancy-repo-$1
  rm -rf "$repo" "$XDG_CACHE_HOME"
  "$bin" -q -r "$repo" init
  sync
  measure "$name.backup" "$bin" -q -r "$repo" backup "$WORK/pristine"
  echo "$(du -sb "$repo" | cut -f1) $(metadata_bytes "$repo")" >>"$RES/$name.size"
  say "run $run $name: $(tail -n 1 "$RES/$name.backup" | cut -d' ' -f1) s, size and metadata $(tail -n 1 "$RES/$name.size")"
  rm -rf "$repo"
}

for run in $(seq 1 "$RUNS"); do
  # Alternate which goes first, so drift in the machine's load evens out.
  if ((run % 2)); then
    one_run base "$BASE" "$run"
    one_run twice "$SNAP" "$run"
  else
    one_run twice "$SNAP" "$run"
    one_run base "$BASE" "$run"
  fi
done

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }
base_s=$(summary base.backup | cut -d' ' -f1)
twice_s=$(summary twice.backup | cut -d' ' -f1)
base_size=$(cut -d' ' -f1 "$RES/base.size" | median)
twice_size=$(cut -d' ' -f1 "$RES/twice.size" | median)
base_meta=$(cut -d' ' -f2 "$RES/base.size" | median)
twice_meta=$(cut -d' ' -f2 "$RES/twice.size" | median)
cat <<EOF

## Metadata twice on the peer dataset ($(du -sh "$WORK/pristine" | cut -f1) of data), medians of $RUNS

| | first backup | repository | metadata packs |
|---|---|---|---|
| once ($("$BASE" --version)) | ${base_s} s | $(mib "$base_size") | $(mib "$base_meta") |
| twice ($(snap_version)) | ${twice_s} s | $(mib "$twice_size") | $(mib "$twice_meta") |
| twice / once | $(awk -v a="$twice_s" -v b="$base_s" 'BEGIN {printf "%.3f", a / b}') | $(awk -v a="$twice_size" -v b="$base_size" 'BEGIN {printf "%.4f (+%.2f%%)", a / b, (a / b - 1) * 100}') | |
EOF
