#!/usr/bin/env bash
# Benchmarks `snap prune` against `restic prune`, and `snap forget --dry-run`
# over many snapshots.
#
# 1. SNAPSHOTS backups of a changing tree (FILES files of FILE_KB KiB; each
#    backup rewrites CHANGE files, adds one and removes one), taken by both
#    snap and restic from the same states;
# 2. both forget the older half (--keep-last SNAPSHOTS/2);
# 3. `snap prune --instant-delete` and `restic prune` are timed, with their
#    peak RSS (/usr/bin/time -v), and the repository sizes before and after;
#    each RUNS times on a fresh copy of the forgotten repository, the best
#    run is reported (the machine may be busy with other work);
# 4. FORGET_SNAPSHOTS snapshots are written cheaply (copies of one, an hour
#    apart; examples/make_snapshots.rs) and `snap forget --dry-run` with a
#    typical policy is timed over them.
#
# Usage: benches/scripts/bench-prune.sh            (small scale, a few minutes)
#        SNAPSHOTS=200 FILES=2000 FILE_KB=256 benches/scripts/bench-prune.sh
# Needs restic (apt-get install -y restic) and GNU time (/usr/bin/time).
set -euo pipefail

SNAPSHOTS=${SNAPSHOTS:-200}
FILES=${FILES:-200}
FILE_KB=${FILE_KB:-64}
CHANGE=${CHANGE:-10}
FORGET_SNAPSHOTS=${FORGET_SNAPSHOTS:-10000}
RUNS=${RUNS:-3}
WORK=${WORK:-$(mktemp -d -t snap-bench-prune-XXXXXX)}

cd "$(dirname "$0")/../.."
if ! command -v restic >/dev/null; then
    echo "installing restic" >&2
    apt-get install -y restic >/dev/null
fi
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time" >&2; exit 1; }
cargo build --release --quiet --bin snap --example make_snapshots
SNAP=$PWD/target/release/snap
MAKE_SNAPSHOTS=$PWD/target/release/examples/make_snapshots

export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache TZ=UTC
unset SNAP_REPO
S="$SNAP -q -r $WORK/snap"
R="restic -q -r $WORK/restic"
SRC=$WORK/src

echo "work folder: $WORK"
$SNAP -q init -r "$WORK/snap" >/dev/null
$R init >/dev/null
mkdir -p "$SRC"
for f in $(seq 1 "$FILES"); do
    head -c $((FILE_KB * 1024)) /dev/urandom >"$SRC/f$f"
done

echo "taking $SNAPSHOTS snapshots of $FILES files of $FILE_KB KiB with each tool..."
next=$((FILES + 1))
for i in $(seq 1 "$SNAPSHOTS"); do
    for c in $(seq 1 "$CHANGE"); do
        f=$(( (i * CHANGE + c) % FILES + 1 ))
        [ -e "$SRC/f$f" ] && head -c $((FILE_KB * 1024)) /dev/urandom >"$SRC/f$f"
    done
    head -c $((FILE_KB * 1024)) /dev/urandom >"$SRC/f$next"
    rm -f "$SRC/f$((next - FILES))"
    next=$((next + 1))
    time=$(date -u -d "2026-01-01 + $i hours" +%Y-%m-%dT%H:%M:%SZ)
    $S backup "$SRC" --time "$time" >/dev/null
    $R backup "$SRC" --time "$(date -u -d "$time" '+%Y-%m-%d %H:%M:%S')" >/dev/null
done

size() { du -sb "$1" | cut -f1; }
repo_size() { echo $(( $(size "$1/data") + $(size "$1/index") + $(size "$1/snapshots") )); }
# Wall time in seconds and peak RSS in MiB from `/usr/bin/time -v` output.
measure() {
    local log=$1
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" |
        awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$log")
    echo "$wall s, peak RSS $rss MiB"
}

keep=$((SNAPSHOTS / 2))
$S forget --keep-last "$keep" >/dev/null
$R forget --keep-last "$keep" >/dev/null
snap_before=$(repo_size "$WORK/snap")
restic_before=$(size "$WORK/restic")
cp -a "$WORK/snap" "$WORK/snap-forgotten"
cp -a "$WORK/restic" "$WORK/restic-forgotten"

# Runs `/usr/bin/time -v CMD...` RUNS times on fresh copies of repository
# $1 (into $1-run); keeps the log of the fastest run in $2.
best_of() {
    local repo=$1 log=$2 best=""
    shift 2
    for _ in $(seq 1 "$RUNS"); do
        rm -rf "$repo"
        cp -a "$repo-forgotten" "$repo"
        sync
        /usr/bin/time -v "$@" >/dev/null 2>"$log.try"
        local wall
        wall=$(measure "$log.try" | cut -d' ' -f1)
        if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$wall
            mv "$log.try" "$log"
        fi
    done
}
best_of "$WORK/snap" "$WORK/snap-prune.time" $S prune --instant-delete
best_of "$WORK/restic" "$WORK/restic-prune.time" $R prune
snap_after=$(repo_size "$WORK/snap")
restic_after=$(size "$WORK/restic")

echo
echo "prune after forgetting $((SNAPSHOTS - keep)) of $SNAPSHOTS snapshots (best of $RUNS):"
echo "  snap prune --instant-delete: $(measure "$WORK/snap-prune.time");" \
    "repository $((snap_before / 1048576)) -> $((snap_after / 1048576)) MiB"
echo "  restic prune:                $(measure "$WORK/restic-prune.time");" \
    "repository $((restic_before / 1048576)) -> $((restic_after / 1048576)) MiB"

echo
echo "writing $FORGET_SNAPSHOTS more snapshots..."
"$MAKE_SNAPSHOTS" "$WORK/snap" "$FORGET_SNAPSHOTS"
count=$($S --json snapshots | grep -c '"short_id"')
policy="--keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 10"
# Once to warm the cache, then timed.
$S forget --dry-run $policy >/dev/null
/usr/bin/time -v $S forget --dry-run $policy >/dev/null 2>"$WORK/snap-forget.time"
echo "snap forget --dry-run $policy over $count snapshots: $(measure "$WORK/snap-forget.time")"
echo
echo "(work folder $WORK; remove it when done)"
