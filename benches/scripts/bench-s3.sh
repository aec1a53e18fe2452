#!/usr/bin/env bash
# Backup and restore into a local repository vs. an S3 repository on a
# loopback S3 server, and `snap copy` of 10 snapshots to an empty S3
# repository vs. a backup of the same data. Prints a Markdown table.
#
# Usage:
#   benches/scripts/bench-s3.sh                      # ~1 GB tree, moto_server on 127.0.0.1
#   BENCH_MB=200 benches/scripts/bench-s3.sh         # smaller tree
#   S3_ENDPOINT=http://127.0.0.1:9000 S3_BUCKET=bench benches/scripts/bench-s3.sh
#                                            # use a server you started (MinIO,
#                                            # s3s-fs, ...); the bucket must exist
#
# Environment:
#   BENCH_DIR   work folder (default /tmp/snap-bench-s3); removed at the end
#               except the generated data (BENCH_DIR/data), reused next time
#   BENCH_MB    size of the data tree in MB (default 1000): a copy of /usr/share,
#               /usr/lib/python3* ... cut at that size
#   SNAP_BIN    snap binary (default target/release/snap; built when missing)
#   S3_ENDPOINT an S3 server to use instead of starting moto_server
#   S3_BUCKET   its bucket (default snap-bench)
#   RESTORE_DIR where restores go (default: /dev/shm when it has 4 GB free)
#   RESTORE_RUNS restores per repository, alternating local and S3 (default 3)
#
# moto_server is a Python emulator that keeps objects in memory; it is
# slower than a real object store, so S3 times measured with it are an
# upper bound for the client side.

set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench-s3}
RESTORE_RUNS=${RESTORE_RUNS:-3}
if [ -z "${RESTORE_DIR:-}" ]; then
  RESTORE_DIR=$WORK/restore
  [ -d /dev/shm ] && [ "$(df -m --output=avail /dev/shm | tail -1)" -gt 4096 ] && RESTORE_DIR=/dev/shm/snap-bench-s3-restore
fi
MB=${BENCH_MB:-1000}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
BUCKET=${S3_BUCKET:-snap-bench}
[ -x "$SNAP" ] || (cd "$ROOT" && cargo build --release)

mkdir -p "$WORK"
DATA=$WORK/data
if [ ! -f "$WORK/data.$MB.done" ]; then
  rm -rf "$DATA" && mkdir -p "$DATA"
  echo "generating ~$MB MB of data in $DATA" >&2
  n=0
  for dir in /usr/share/* /usr/lib/python3*/* /usr/lib/x86_64-linux-gnu/*; do
    [ -d "$dir" ] || continue
    n=$((n + 1))
    cp -a "$dir" "$DATA/$n-$(basename "$dir")" 2>/dev/null || true
    [ "$(du -sm "$DATA" | cut -f1)" -ge "$MB" ] && break
  done
  touch "$WORK/data.$MB.done"
fi
SIZE=$(du -sm "$DATA" | cut -f1)
find "$DATA" -type f -exec cat {} + >/dev/null  # warm the page cache

SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK/repo-local" "$WORK/restore" "$WORK/cache" "$WORK/copysrc" "$RESTORE_DIR"
}
trap cleanup EXIT

if [ -z "${S3_ENDPOINT:-}" ]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  SERVER_PID=$!
  S3_ENDPOINT=http://127.0.0.1:$PORT
  for _ in $(seq 100); do curl -sf "$S3_ENDPOINT/" >/dev/null && break; sleep 0.2; done
  curl -sf -X PUT "$S3_ENDPOINT/$BUCKET" >/dev/null
  SERVER="moto_server $(python3 -c 'import moto; print(moto.__version__)')"
else
  SERVER="$S3_ENDPOINT"
fi
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-bench} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-bench}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_ENDPOINT_URL=$S3_ENDPOINT
export XDG_CACHE_HOME=$WORK/cache
RUN=$(date +%s)

secs() { # secs CMD... : wall seconds of a command
  local start end
  start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N)
  echo "$end - $start" | bc
}

LOCAL=$WORK/repo-local
S3=s3://$BUCKET/run-$RUN
rm -rf "$LOCAL" "$WORK/restore"
"$SNAP" -q -r "$LOCAL" init
"$SNAP" -q -r "$S3/main" init
sync
t_backup_local=$(secs "$SNAP" -q -r "$LOCAL" backup "$DATA")
t_backup_s3=$(secs "$SNAP" -q -r "$S3/main" backup "$DATA")
sync
# Restores go to RESTORE_DIR (tmpfs by default): on ext4, creating tens of
# thousands of files right after deleting as many makes the kernel's inode
# allocator scan (recently_deleted), which made whichever restore ran second
# look 2-3x slower. Local and S3 alternate, median of RESTORE_RUNS.
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
restores_local="" restores_s3=""
for i in $(seq "$RESTORE_RUNS"); do
  order="local s3"; [ $((i % 2)) = 0 ] && order="s3 local"
  for which in $order; do
    [ "$which" = local ] && repo=$LOCAL || repo=$S3/main
    t=$(secs "$SNAP" -q -r "$repo" restore latest --target "$RESTORE_DIR/$which")
    rm -rf "${RESTORE_DIR:?}/$which"; sync
    if [ "$which" = local ]; then restores_local+="$t "; else restores_s3+="$t "; fi
  done
done
t_restore_local=$(echo $restores_local | tr ' ' '\n' | median)
t_restore_s3=$(echo $restores_s3 | tr ' ' '\n' | median)

# 10 snapshots of the same data in the local repository (one file changes
# between them), then copied to an empty S3 repository.
for i in $(seq 2 10); do
  echo "change $i" >"$DATA/bench-change.txt"
  "$SNAP" -q -r "$LOCAL" backup "$DATA"
done
rm -f "$DATA/bench-change.txt"
"$SNAP" -q -r "$S3/copy" init
t_copy=$(secs "$SNAP" -q -r "$LOCAL" copy --to "$S3/copy")
copied=$("$SNAP" -r "$S3/copy" --json snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
t_copy_again=$(secs "$SNAP" -q -r "$LOCAL" copy --to "$S3/copy")

ratio() { echo "scale=2; $1 / $2" | bc; }
fix() { printf "%.2f" "$1"; }
cat <<EOF

snap copy/backup on S3 vs local: ${SIZE} MB tree, $(nproc) cores, server: $SERVER

| step | local | S3 | S3 / local |
|------|------:|---:|-----------:|
| backup into an empty repository | $(fix "$t_backup_local") s | $(fix "$t_backup_s3") s | $(ratio "$t_backup_s3" "$t_backup_local") |
| restore everything (median of $RESTORE_RUNS, alternating) | $(fix "$t_restore_local") s | $(fix "$t_restore_s3") s | $(ratio "$t_restore_s3" "$t_restore_local") |

| step | seconds |
|------|--------:|
| backup of the tree into an empty S3 repository | $(fix "$t_backup_s3") |
| snap copy of ${copied} snapshots (local -> empty S3 repository) | $(fix "$t_copy") |
| the same copy again (nothing to do) | $(fix "$t_copy_again") |
EOF
