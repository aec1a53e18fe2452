#!/usr/bin/env bash
# Benchmarks the `snap ui` server on a long history: a repository of 1,000
# snapshots of the peer dataset's entity folder (bench-peers.sh's notes and
# conversation database), a few files changed between snapshots. Prints a
# Markdown table (also saved as $BENCH_DIR/ui-results-TIMESTAMP.md).
#
# Usage:
#   benches/scripts/bench-ui.sh
#   BENCH_SNAPSHOTS=100 RUNS=3 benches/scripts/bench-ui.sh    # quick
#
# Environment:
#   BENCH_DIR        work dir (default /tmp/snap-bench); the dataset is
#                    $BENCH_DIR/pristine (made by bench-peers.sh when missing),
#                    the repository $BENCH_DIR/ui/repo, reused by later runs with
#                    the same BENCH_SNAPSHOTS (delete $BENCH_DIR/ui to build it anew)
#   BENCH_SNAPSHOTS  snapshots in the repository (default 1000)
#   BENCH_VISITS     visits of every page type before the RSS is read (default 100)
#   BENCH_SLOW_VISITS  visits of the two slow pages, search and the database
#                    diff, in that loop (default BENCH_VISITS)
#   RUNS             timed requests per page; the median is reported (default 5)
#   SNAP_BIN         snap binary (default: target/release/snap, built with cargo build --release)
#   BENCH_NO_BUILD   set to 1 to skip cargo build --release
#
# What is measured:
#   - server time of a page: curl's time to the last byte of the response over
#     loopback, with the session cookie (no token in the URL, so no redirect),
#     median of RUNS after one untimed request (a browser's first visit also
#     pays for the first listing; that one is reported too)
#   - the timeline page, a folder and a file of the latest snapshot, the
#     history of identity.md (changed in every snapshot, so BENCH_SNAPSHOTS
#     versions), a text diff of its first and last version, the database's
#     tables and row diff across the last ten snapshots, the changes since the
#     previous snapshot next to `snap diff latest~1 latest` (wall time of the
#     command, process start and repository open included), search and health
#   - the server's resident memory (VmRSS, and VmHWM, its peak) after every
#     page type was visited BENCH_VISITS times
#
# Snapshot times are spread 8 hours apart (backup --time), so the calendar of
# the timeline spans most of a year as it would for a real user.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench}
SNAPSHOTS=${BENCH_SNAPSHOTS:-1000}
VISITS=${BENCH_VISITS:-100}
SLOW_VISITS=${BENCH_SLOW_VISITS:-$VISITS}
RUNS=${RUNS:-5}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
TOOLS=snap
UI=$WORK/ui
REPO=$UI/repo
DATA=$UI/entity
LOGS=$UI/logs
RES=$UI/measurements

# say, build_snap, snap_version
# shellcheck source=bench-lib.sh
source "$ROOT/benches/scripts/bench-lib.sh"

# --- the repository ---------------------------------------------------------

# The change before snapshot $1: a line appended to identity.md every time,
# one of the notes rewritten in turn, and every tenth time a few rows of the
# database changed.
apply_change() {
  local n=$1 note
  printf 'Session %d: we talked about the garden and the letter.\n' "$n" >>"$DATA/identity.md"
  note=${NOTES_LIST[n % ${#NOTES_LIST[@]}]}
  printf '\n## Edit %d\n\nA short paragraph added in session %d.\n' "$n" "$n" >>"$DATA/$note"
  if ((n % 10 == 0)); then
    sqlite3 "$DATA/conversations.db" \
      "UPDATE messages SET content = content || ' (edited in session $n)' WHERE id % 997 = $((n % 997));
       INSERT INTO messages (conversation_id, role, created_at, content)
         VALUES ((SELECT max(id) FROM conversations), 'assistant', datetime('now'), 'session $n');"
  fi
}

build_repository() {
  local marker=$UI/.built-$SNAPSHOTS
  [[ -e $marker ]] && return 0
  if [[ ! -d $WORK/pristine/entity ]]; then
    say "generating the peer dataset with bench-peers.sh (entity folder only)"
    BENCH_DIR=$WORK BENCH_SYSTEM_MB=${BENCH_SYSTEM_MB:-1} BENCH_GENERATE_ONLY=1 TOOLS=snap \
      BENCH_NO_BUILD=1 SNAP_BIN=$SNAP "$ROOT/benches/scripts/bench-peers.sh"
  fi
  rm -rf "$UI"
  mkdir -p "$UI" "$LOGS"
  cp -a "$WORK/pristine/entity" "$DATA"
  mapfile -t NOTES_LIST < <(cd "$DATA" && find notes memories journal -name '*.md' | sort | head -n 20)
  "$SNAP" -r "$REPO" init >"$LOGS/init.log" 2>&1
  say "taking $SNAPSHOTS snapshots of $DATA into $REPO"
  local n start
  start=$(date -u -d '2025-01-01T00:00:00Z' +%s)
  for ((n = 1; n <= SNAPSHOTS; n++)); do
    ((n > 1)) && apply_change "$n"
    "$SNAP" -r "$REPO" --progress none backup "$DATA" \
      --time "$(date -u -d "@$((start + n * 8 * 3600))" +%Y-%m-%dT%H:%M:%SZ)" >/dev/null
    ((n % 100 == 0)) && say "$n snapshots, repository $(du -sh "$REPO" | cut -f1)"
  done
  touch "$marker"
}

# --- the server -------------------------------------------------------------

SERVER_PID=
stop_server() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=
}
trap stop_server EXIT

# Starts `snap ui` and sets ORIGIN; the first request with the token stores
# the session cookie in $UI/cookies.
start_server() {
  rm -f "$UI/ui.out" "$UI/cookies"
  "$SNAP" -r "$REPO" ui >"$UI/ui.out" 2>"$LOGS/ui.err" &
  SERVER_PID=$!
  local tries=0
  until grep -q '^snap ui: ' "$UI/ui.out" 2>/dev/null; do
    ((++tries < 600)) || { echo "snap ui printed no address; see $LOGS/ui.err" >&2; exit 1; }
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOGS/ui.err" >&2; exit 1; }
    sleep 0.1
  done
  URL=$(sed -n 's/^snap ui: //p' "$UI/ui.out" | head -n 1)
  ORIGIN=${URL%%/\?*}
  curl -sS -o /dev/null -c "$UI/cookies" "$URL"
}

# get PATH: fetches one page with the cookie, prints its seconds; fails on
# any status but 200.
get() {
  local out code seconds
  out=$(curl -sS -o "$UI/page.html" -b "$UI/cookies" -w '%{http_code} %{time_total}' "$ORIGIN$1")
  code=${out% *}
  seconds=${out#* }
  [[ $code == 200 ]] || { echo "GET $1: HTTP $code: $(head -c 300 "$UI/page.html")" >&2; exit 1; }
  echo "$seconds"
}

# time_page KEY PATH: one untimed request, then RUNS timed; records the first
# and the median in milliseconds.
time_page() {
  local key=$1 path=$2 first i
  first=$(get "$path")
  : >"$RES/$key"
  for ((i = 0; i < RUNS; i++)); do get "$path" >>"$RES/$key"; done
  FIRST[$key]=$(awk -v s="$first" 'BEGIN {printf "%.0f", s * 1000}')
  MEDIAN[$key]=$(sort -n "$RES/$key" | awk '{v[NR] = $1} END {printf "%.0f", v[int((NR + 1) / 2)] * 1000}')
}

# time_command KEY COMMAND...: median wall milliseconds of RUNS runs.
time_command() {
  local key=$1 i start end
  shift
  : >"$RES/$key"
  for ((i = 0; i < RUNS; i++)); do
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    echo $(((end - start) / 1000000)) >>"$RES/$key"
  done
  MEDIAN[$key]=$(sort -n "$RES/$key" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
}

rss_mib() { awk -v f="$1:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$SERVER_PID/status"; }

# --- main -------------------------------------------------------------------

main() {
  [[ -x /usr/bin/time ]] || { say "installing time"; apt-get install -y -qq time >/dev/null; }
  command -v sqlite3 >/dev/null || { say "installing sqlite3"; apt-get install -y -qq sqlite3 >/dev/null; }
  command -v curl >/dev/null || { say "installing curl"; apt-get install -y -qq curl >/dev/null; }
  build_snap
  build_repository
  mkdir -p "$LOGS" "$RES"
  local first last count
  first=$("$SNAP" -r "$REPO" --json snapshots | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  last=$("$SNAP" -r "$REPO" --json snapshots | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
  count=$("$SNAP" -r "$REPO" --json snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  declare -gA FIRST=() MEDIAN=()
  start_server
  say "server at $ORIGIN (pid $SERVER_PID)"
  declare -gA PAGES=(
    [timeline]="/"
    [folder]="/snapshot/$last?path=$DATA/notes"
    [file]="/snapshot/$last?path=$DATA/identity.md"
    [history]="/history?path=$DATA/identity.md"
    [file-diff]="/compare?path=$DATA/identity.md&a=$first&b=$last"
    [sqlite-diff]="/compare?path=$DATA/conversations.db&a=latest~10&b=latest"
    [changes]="/snapshot/$last/changes"
    [search]="/search?q=*.db"
    [health]="/health"
  )
  local key
  ORDER="timeline folder file history file-diff sqlite-diff changes search health"
  for key in $ORDER; do
    time_page "$key" "${PAGES[$key]}"
  done
  time_command cli-diff "$SNAP" -r "$REPO" diff latest~1 latest
  time_command cli-sqlite-diff "$SNAP" -r "$REPO" diff latest~10 latest "$DATA/conversations.db" --content
  time_command cli-find "$SNAP" -r "$REPO" find '*.db'
  local rss_before visits=0 i
  rss_before=$(rss_mib VmRSS)
  say "visiting every page type $VISITS times (search and sqlite-diff $SLOW_VISITS)"
  for ((i = 0; i < VISITS; i++)); do
    for key in "${!PAGES[@]}"; do
      [[ $key == search || $key == sqlite-diff ]] && ((i >= SLOW_VISITS)) && continue
      get "${PAGES[$key]}" >/dev/null
      visits=$((visits + 1))
    done
  done
  local rss_after hwm
  rss_after=$(rss_mib VmRSS)
  hwm=$(rss_mib VmHWM)
  stop_server

  local out path
  out=$UI/ui-results-$(date -u +%Y%m%dT%H%M%SZ).md
  {
    echo "## snap ui on $count snapshots ($(snap_version))"
    echo
    echo "Repository: $(du -sh "$REPO" | cut -f1), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)."
    echo
    echo "| page | path | first request | median of $RUNS |"
    echo "| --- | --- | ---: | ---: |"
    for key in $ORDER; do
      path=${PAGES[$key]//$DATA/DATA}
      path=${path//$first/FIRST}
      path=${path//$last/LAST}
      echo "| $key | \`$path\` | ${FIRST[$key]} ms | ${MEDIAN[$key]} ms |"
    done
    echo "| \`snap diff latest~1 latest\` (the command, for changes) | | | ${MEDIAN[cli-diff]} ms |"
    echo "| \`snap diff latest~10 latest DATA/conversations.db --content\` (for sqlite-diff) | | | ${MEDIAN[cli-sqlite-diff]} ms |"
    echo "| \`snap find '*.db'\` (for search) | | | ${MEDIAN[cli-find]} ms |"
    echo
    echo "Server memory: VmRSS $rss_before MiB after the timed requests, $rss_after MiB after"
    echo "$visits more requests ($VISITS visits of each page type, $SLOW_VISITS of search and sqlite-diff);"
    echo "peak (VmHWM) $hwm MiB."
  } | tee "$out"
}

main "$@"
