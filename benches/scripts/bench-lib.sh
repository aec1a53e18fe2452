# Helpers shared by the benchmark scripts (bench-peers.sh, bench-scale.sh):
# building snap, timing a command with its peak RSS, medians, table cells.
# Source it after setting ROOT, SNAP, TOOLS, LOGS and RES; the functions read
# those variables (and SNAP_BIN, BENCH_NO_BUILD) when they run.
# shellcheck shell=bash

say() { printf '==> %s\n' "$*" >&2; }

build_snap() {
  [[ " $TOOLS " == *" snap "* || " $TOOLS " == *" snap-enc "* ]] || return 0
  if [[ -z ${SNAP_BIN:-} && ${BENCH_NO_BUILD:-0} != 1 ]]; then
    say "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
  fi
  [[ -x $SNAP ]] || { echo "no snap binary at $SNAP" >&2; exit 1; }
}

# measure KEY COMMAND...: runs COMMAND under /usr/bin/time, appends "seconds rss_kib"
# (or FAIL) to $RES/KEY; output goes to a log. Wall time is taken here with
# nanosecond resolution (time's %e has only two decimals); %M is the
# "Maximum resident set size" that time -v prints.
measure() {
  local key=$1
  shift
  local log start end
  log=$LOGS/$key.$(date +%s%N).log
  start=$(date +%s%N)
  if /usr/bin/time -f '%M' -o "$RES/.time" "$@" >"$log" 2>&1; then
    end=$(date +%s%N)
    echo "$(awk -v ns=$((end - start)) 'BEGIN {printf "%.3f", ns / 1e9}') $(tail -n 1 "$RES/.time")" >>"$RES/$key"
  else
    echo FAIL >>"$RES/$key"
    say "FAILED: $key (log: $log)"
    tail -n 5 "$log" >&2 || true
  fi
}

# summary KEY: "median_seconds max_rss_kib", or "FAIL", or "-" when not run
summary() {
  local file=$RES/$1
  [[ -s $file ]] || { echo "-"; return; }
  grep -q FAIL "$file" && { echo FAIL; return; }
  local median rss
  median=$(cut -d' ' -f1 "$file" | sort -g | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}')
  rss=$(cut -d' ' -f2 "$file" | sort -g | tail -n 1)
  echo "$median $rss"
}

cell() { # "12.3 s, 45 MiB"
  local s=$1
  case $s in -|FAIL) echo "$s"; return ;; esac
  awk -v t="${s% *}" -v r="${s#* }" 'BEGIN {printf (t < 1 ? "%.3f" : "%.2f") " s, %.0f MiB", t, r / 1024}'
}

ratio() { # ratio of two "seconds rss" stats: "2.1x time, 0.8x RSS"
  local a=$1 b=$2
  case "$a$b" in *-*|*FAIL*) echo "-"; return ;; esac
  awk -v ta="${a% *}" -v ra="${a#* }" -v tb="${b% *}" -v rb="${b#* }" \
    'BEGIN {printf "%s time, %.2fx RSS", (tb > 0 ? sprintf("%.2fx", ta / tb) : "n/a"), ra / rb}'
}

# Which snap was measured: the commit it was built from when this script built
# it, else the binary's own version and build time.
snap_version() {
  local built
  built=$(date -r "$SNAP" +%Y-%m-%dT%H:%M 2>/dev/null || echo '?')
  if [[ -z ${SNAP_BIN:-} && ${BENCH_NO_BUILD:-0} != 1 ]]; then
    echo "snap $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+uncommitted changes') (built $built)"
  else
    echo "$("$SNAP" --version 2>/dev/null || echo snap) ($SNAP, built $built)"
  fi
}

mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }

# Wall seconds of `timed NAME CMD...`, median of $RUNS runs (each must exit
# 0); the peak RSS (KiB) of every run goes to $LOGS/NAME.rss, its output to
# $LOGS/NAME.{out,err}. $TIMED_BEFORE, when set, runs untimed before each run.
timed() {
  local name=$1; shift
  local times=()
  for ((i = 0; i < RUNS; i++)); do
    if [[ -n ${TIMED_BEFORE:-} ]]; then eval "$TIMED_BEFORE"; fi
    sync
    /usr/bin/time -f '%e %M' -o "$LOGS/$name.time" "$@" > "$LOGS/$name.out" 2> "$LOGS/$name.err" || {
      say "$name failed: $*"; cat "$LOGS/$name.err" >&2; exit 1
    }
    times+=("$(cut -d' ' -f1 "$LOGS/$name.time")")
    cut -d' ' -f2 "$LOGS/$name.time" >> "$LOGS/$name.rss"
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# The largest peak RSS recorded for NAME by `timed`, in MiB.
peak_rss_mib() { sort -n "$LOGS/$1.rss" | tail -1 | awk '{printf "%.0f", $1/1024}'; }
