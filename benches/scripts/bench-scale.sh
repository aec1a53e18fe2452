#!/usr/bin/env bash
# First backup of many small files: snap against restic (and rustic when it
# is installed), warm and with dropped page caches, with peak RSS, repository
# and cache sizes, as a Markdown table (also saved as $BENCH_DIR/results-TIMESTAMP.md).
#
# Usage:
#   benches/scripts/bench-scale.sh                          # 300,000 files, warm and dropped
#   FILES="60k 300k" benches/scripts/bench-scale.sh         # two sizes in one run
#   FILES=1M MODES=warm RUNS=1 benches/scripts/bench-scale.sh   # the memory row at 1M (long)
#
# Environment:
#   BENCH_DIR     work dir (default /tmp/snap-bench-scale): trees, repositories, caches, logs.
#                 Keep it outside the git work tree.
#   FILES         file counts, space or comma separated, with an optional k or M
#                 suffix (default 300k). Each tree is 100 folders x N/10,000
#                 subfolders x 100 files of 0.1-3 KB of generated text: 60k is
#                 100 x 6 x 100, 300k is 100 x 30 x 100, 1M is 100 x 100 x 100.
#   MODES         "warm dropped" (default): warm reads the tree before the runs;
#                 dropped runs `sync; echo 3 > /proc/sys/vm/drop_caches` before
#                 every timed backup (needs root; skipped with a notice if not permitted)
#   RUNS          first backups per tool, size and mode, each into a fresh
#                 repository with an empty cache; the median is reported (default 3)
#   TOOLS         default "snap restic rustic"; a tool that is not installed is
#                 skipped with a notice
#   SNAP_BIN      snap binary (default: target/release/snap, built with cargo build --release)
#   SNAP_BASE_BIN a second snap binary to compare with (say, a build of main): measured
#                 as the tool "snap-base", after snap in the tool order, and
#                 reported as snap-base/snap like a peer; TOOLS="snap" SNAP_BASE_BIN=...
#                 compares two builds without the peers
#   BENCH_NO_BUILD     set to 1 to skip cargo build --release
#   BENCH_KEEP_DATA    set to 1 to keep the generated trees (default: each tree is
#                      deleted when its size is done; generating 300k files takes ~30 s)
#   BENCH_GENERATE_ONLY  set to 1 to generate the trees of FILES and stop (they are kept)
#   RESTIC_PASSWORD    password of the restic and rustic repositories (default "snap-bench")
#
# Runs alternate tool after tool within each round (snap, restic, rustic,
# then restic, rustic, snap, ...: the order rotates every round), so a slow
# minute on this shared machine hits every tool, and no tool always runs
# in the same place.
# Times are wall-clock medians; RSS is the largest "Maximum resident set size"
# (/usr/bin/time, the %M of time -v) seen. Repository size is du -sb of
# everything in the repository folder; the caches are measured on their own:
# snap's index cache under XDG_CACHE_HOME (pointed into BENCH_DIR), restic's
# and rustic's --cache-dir. restic always encrypts and compresses with
# --compression auto; snap runs unencrypted with its default zstd level.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench-scale}
RUNS=${RUNS:-3}
MODES=${MODES:-warm dropped}
TOOLS=${TOOLS:-snap restic rustic}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
SNAP_BASE=${SNAP_BASE_BIN:-}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-snap-bench}

TREES=$WORK/trees
REPOS=$WORK/repos
CACHES=$WORK/caches
LOGS=$WORK/logs
RES=$WORK/measurements

# say, build_snap, measure, summary, cell, ratio, snap_version, mib
# shellcheck source=bench-lib.sh
source "$ROOT/benches/scripts/bench-lib.sh"

# "60k 1M,300000" -> "60000 1000000 300000"
parse_counts() {
  local n out=()
  for n in ${1//,/ }; do
    case $n in
      *[kK]) n=$((${n%?} * 1000)) ;;
      *[mM]) n=$((${n%?} * 1000000)) ;;
    esac
    [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || { echo "FILES: '$n' is not a file count (like 60000, 60k or 1M)" >&2; exit 2; }
    out+=("$n")
  done
  echo "${out[*]}"
}
COUNTS=$(parse_counts "${FILES:-300k}")

for mode in $MODES; do
  [[ $mode == warm || $mode == dropped ]] || { echo "MODES: '$mode' is neither warm nor dropped" >&2; exit 2; }
done

# --- prerequisites ----------------------------------------------------------

# Keeps the installed tools in TOOLS; says which are skipped.
detect_tools() {
  local tool kept=()
  for tool in $TOOLS; do
    case $tool in
      snap)
        kept+=(snap)
        if [[ -n $SNAP_BASE ]]; then
          [[ -x $SNAP_BASE ]] || { echo "SNAP_BASE_BIN: no binary at $SNAP_BASE" >&2; exit 1; }
          kept+=(snap-base)
        fi ;;
      snap-base) ;; # measured when SNAP_BASE_BIN is set, after snap in the tool order
      restic | rustic)
        if command -v "$tool" >/dev/null; then
          kept+=("$tool")
        else
          say "$tool is not installed: skipped"
          SKIPPED_TOOLS+=" $tool"
        fi ;;
      *) echo "TOOLS: unknown tool '$tool' (snap, restic, rustic)" >&2; exit 2 ;;
    esac
  done
  [[ -x /usr/bin/time ]] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
  TOOLS=${kept[*]}
}

SKIPPED_TOOLS=

# Whether this process may drop the page cache; if not, the dropped mode goes.
check_drop_permission() {
  [[ " $MODES " == *" dropped "* ]] || return 0
  if ! { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    say "cannot write /proc/sys/vm/drop_caches (needs root): dropped-cache runs skipped"
    DROP_SKIPPED=1
    MODES=${MODES//dropped/}
  fi
}
DROP_SKIPPED=0

# --- data -------------------------------------------------------------------

tree_of() { echo "$TREES/files-$1"; }

# generate_tree N: 100 folders x ceil(N/10,000) subfolders x 100 files, the
# first N of them, each 100-3000 bytes cut from a generated text at a random
# offset. The same N always gives the same bytes (fixed seed, sorted order).
generate_tree() {
  local n=$1 dir
  dir=$(tree_of "$n")
  [[ -e $dir.generated ]] && return 0
  say "generating $n files in $dir"
  rm -rf "$dir" "$dir.generated"
  mkdir -p "$dir"
  python3 - "$dir" "$n" <<'PY'
import os, random, sys

out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(17)
WORDS = ("the of and to a in is it you that he was for on are with as I his they be at one have this "
         "from or had by word but what some we can out other were all there when up use your how said an "
         "each she which do their time if will way about many then them write would like so these her long "
         "memory garden letter morning quiet remember conversation together tomorrow yesterday feeling "
         "river window music dream journal promise gentle curious laugh light moment story").split()
parts = []
for _ in range(600_000):
    parts.append(rng.choice(WORDS))
    roll = rng.random()
    parts.append("\n" if roll < 0.08 else ". " if roll < 0.15 else " ")
pool = "".join(parts).encode()
subfolders = -(-n // 10_000)
written = 0
for top in range(100):
    for sub in range(subfolders):
        if written >= n:
            break
        folder = os.path.join(out, f"d{top:03d}", f"s{sub:03d}")
        os.makedirs(folder)
        for f in range(min(100, n - written)):
            size = rng.randint(100, 3000)
            start = rng.randrange(len(pool) - size)
            with open(os.path.join(folder, f"f{f:03d}.txt"), "wb") as fh:
                fh.write(pool[start:start + size])
        written += min(100, n - written)
PY
  touch "$dir.generated"
}

warm_tree() { tar -cf - -C "$1" . | cat >/dev/null; }

drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }

# --- tools ------------------------------------------------------------------

# rotated R TOOL...: the tools starting at the R-th (1-based, cycling), so
# that each tool takes every place in a round. With a fixed order one tool
# always ran right after restic had written (and the next reset removed)
# its large repository: two runs of the same two snap builds with their
# places swapped put the one in first place 7% and 2% behind.
rotated() {
  local r=$1; shift
  local tools=("$@") i
  for ((i = 0; i < ${#tools[@]}; i++)); do
    printf '%s\n' "${tools[(i + r - 1) % ${#tools[@]}]}"
  done
}

repo_of() { echo "$REPOS/$1"; }
cache_of() { echo "$CACHES/$1"; }

tool_reset() { # remove repository and cache, then init (untimed)
  local tool=$1 repo cache
  repo=$(repo_of "$tool")
  cache=$(cache_of "$tool")
  rm -rf "$repo" "$cache"
  mkdir -p "$cache"
  case $tool in
    snap) XDG_CACHE_HOME=$cache "$SNAP" -r "$repo" init ;;
    snap-base) XDG_CACHE_HOME=$cache "$SNAP_BASE" -r "$repo" init ;;
    restic) restic -r "$repo" --cache-dir "$cache" init ;;
    rustic) rustic -r "$repo" --password "$RESTIC_PASSWORD" --cache-dir "$cache" init ;;
  esac >"$LOGS/$tool.init.log" 2>&1 || { say "FAILED: $tool init (log: $LOGS/$tool.init.log)"; tail -n 5 "$LOGS/$tool.init.log" >&2; }
  sync
}

tool_backup() { # KEY TOOL TREE
  local key=$1 tool=$2 tree=$3 repo cache
  repo=$(repo_of "$tool")
  cache=$(cache_of "$tool")
  case $tool in
    snap) measure "$key" env XDG_CACHE_HOME="$cache" "$SNAP" -r "$repo" backup "$tree" ;;
    snap-base) measure "$key" env XDG_CACHE_HOME="$cache" "$SNAP_BASE" -r "$repo" backup "$tree" ;;
    restic) measure "$key" restic -r "$repo" --cache-dir "$cache" --compression auto backup "$tree" ;;
    rustic) measure "$key" rustic -r "$repo" --password "$RESTIC_PASSWORD" --cache-dir "$cache" backup "$tree" ;;
  esac
}

# Sizes after the last first backup of N files: "$RES/N.TOOL.size" holds
# "repository_bytes cache_bytes".
record_sizes() {
  local n=$1 tool
  for tool in $TOOLS; do
    echo "$(du -sb "$(repo_of "$tool")" | cut -f1) $(du -sb "$(cache_of "$tool")" | cut -f1)" >"$RES/$n.$tool.size"
  done
}

# --- report -----------------------------------------------------------------

thousands() { echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }

report() {
  local n mode tool s base row header rule
  echo "## First backup of many small files: ${TOOLS// / vs }"
  echo
  echo "- data: generated text files of 0.1-3 KB, 100 folders x N/10,000 subfolders x 100 files"
  for n in $COUNTS; do
    echo "  - $(thousands "$n") files: $(mib "$(cat "$RES/$n.bytes")") of file contents"
  done
  echo "- runs: ${RUNS}x per tool, size and mode, alternating tools in an order rotated every round, each into a fresh repository and empty cache; median wall time, largest peak RSS"
  echo "- page cache: warm = the tree was read before the runs; dropped = \`sync; echo 3 > /proc/sys/vm/drop_caches\` before every timed backup"
  ((DROP_SKIPPED)) && echo "- dropped-cache runs SKIPPED: /proc/sys/vm/drop_caches was not writable"
  echo "- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $(date -u +%Y-%m-%dT%H:%MZ)"
  local versions=" $(snap_version)"
  for tool in $TOOLS; do
    case $tool in
      snap-base) versions+=", snap-base: $("$SNAP_BASE" --version 2>/dev/null || echo snap) ($SNAP_BASE, built $(date -r "$SNAP_BASE" +%Y-%m-%dT%H:%M))" ;;
      restic) versions+=", $(restic version | cut -d' ' -f1-2)" ;;
      rustic) versions+=", $(rustic --version 2>/dev/null | head -n 1)" ;;
    esac
  done
  echo "- versions:$versions"
  [[ -z $SKIPPED_TOOLS ]] || echo "- not installed, so not measured:$SKIPPED_TOOLS"
  echo "- restic encrypts (always) and compresses with --compression auto; snap is unencrypted, zstd at its default level"
  [[ -z $SNAP_BASE ]] || echo "- snap-base is the same snap benchmark with \$SNAP_BASE_BIN; snap-base/snap above 1 means snap got faster"
  echo
  header="| files | page cache |"
  rule="|---:|---|"
  for tool in $TOOLS; do header+=" $tool |"; rule+="---|"; done
  for tool in $TOOLS; do [[ $tool == snap ]] || { header+=" $tool/snap |"; rule+="---|"; }; done
  echo "$header"
  echo "$rule"
  for n in $COUNTS; do
    for mode in $MODES; do
      row="| $(thousands "$n") | $mode |"
      base=$(summary "$n.$mode.snap")
      for tool in $TOOLS; do row+=" $(cell "$(summary "$n.$mode.$tool")") |"; done
      for tool in $TOOLS; do
        [[ $tool == snap ]] || row+=" $(ratio "$(summary "$n.$mode.$tool")" "$base") |"
      done
      echo "$row"
    done
  done
  echo
  echo "Peak RSS of the first backup as the file count grows (largest over all runs and modes):"
  echo
  header="| tool |"
  rule="|---|"
  for n in $COUNTS; do header+=" $(thousands "$n") |"; rule+="---:|"; done
  echo "$header"
  echo "$rule"
  for tool in $TOOLS; do
    row="| $tool |"
    for n in $COUNTS; do
      s=$(cat "$RES/$n."*".$tool" 2>/dev/null | grep -v FAIL | cut -d' ' -f2 | sort -g | tail -n 1)
      if [[ -n $s ]]; then row+=" $(awk -v r="$s" 'BEGIN {printf "%.0f MiB", r / 1024}') |"; else row+=" - |"; fi
    done
    echo "$row"
  done
  echo
  echo "Sizes after one first backup (repository: du -sb of everything in its folder; cache: the tool's cache folder):"
  echo
  header="| files |"
  rule="|---:|"
  for tool in $TOOLS; do header+=" $tool repository | $tool cache |"; rule+="---:|---:|"; done
  for tool in $TOOLS; do [[ $tool == snap ]] || { header+=" $tool/snap repository |"; rule+="---:|"; }; done
  echo "$header"
  echo "$rule"
  local -A repo_bytes
  local cache_bytes
  for n in $COUNTS; do
    row="| $(thousands "$n") |"
    repo_bytes=()
    for tool in $TOOLS; do
      if [[ -s $RES/$n.$tool.size ]]; then
        read -r repo_bytes[$tool] cache_bytes <"$RES/$n.$tool.size"
        row+=" $(mib "${repo_bytes[$tool]}") | $(mib "$cache_bytes") |"
      else
        repo_bytes[$tool]=0
        row+=" - | - |"
      fi
    done
    for tool in $TOOLS; do
      [[ $tool == snap ]] && continue
      if ((repo_bytes[snap] > 0 && repo_bytes[$tool] > 0)); then
        row+=" $(awk -v a="${repo_bytes[$tool]}" -v b="${repo_bytes[snap]}" 'BEGIN {printf "%.2fx", a / b}') |"
      else
        row+=" - |"
      fi
    done
    echo "$row"
  done
}

# --- main -------------------------------------------------------------------

main() {
  if [[ ${BENCH_GENERATE_ONLY:-0} == 1 ]]; then
    local n
    for n in $COUNTS; do generate_tree "$n"; done
    return 0
  fi
  detect_tools
  build_snap
  check_drop_permission
  rm -rf "$REPOS" "$CACHES" "$LOGS" "$RES"
  mkdir -p "$REPOS" "$CACHES" "$LOGS" "$RES"
  local n mode run tool tree
  for n in $COUNTS; do
    generate_tree "$n"
    tree=$(tree_of "$n")
    find "$tree" -type f -name '*.txt' -printf '%s\n' | awk '{s += $1} END {print s + 0}' >"$RES/$n.bytes"
    for mode in $MODES; do
      say "$n files, $mode page cache, ${RUNS}x: $TOOLS"
      [[ $mode == warm ]] && warm_tree "$tree"
      for ((run = 1; run <= RUNS; run++)); do
        for tool in $(rotated "$run" $TOOLS); do
          tool_reset "$tool"
          [[ $mode == dropped ]] && drop_caches
          tool_backup "$n.$mode.$tool" "$tool" "$tree"
        done
      done
    done
    record_sizes "$n"
    [[ ${BENCH_KEEP_DATA:-0} == 1 ]] || rm -rf "$tree" "$tree.generated"
  done
  rm -rf "$REPOS" "$CACHES"

  local out
  out=$WORK/results-$(date +%Y%m%d-%H%M%S).md
  report | tee "$out"
  say "saved to $out; logs in $LOGS"
}

main "$@"
