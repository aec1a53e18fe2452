#!/usr/bin/env bash
# Compare snap with restic and borgbackup on the same data, in one run, and
# print a Markdown table (also saved as $BENCH_DIR/results-TIMESTAMP.md).
#
# Usage:
#   benches/scripts/bench-peers.sh                    # ~1 GB of data, 3 runs per cheap step
#   BENCH_SCALE=small RUNS=1 benches/scripts/bench-peers.sh   # ~100 MB, quick
#
# Environment:
#   BENCH_DIR        work dir (default /tmp/snap-bench): data, repos, restores, logs.
#                    Generated data is kept in $BENCH_DIR/pristine and reused by later
#                    runs of the same sizes; delete that folder to generate it anew.
#                    Keep BENCH_DIR outside the git work tree.
#   BENCH_SCALE      full (default, ~1 GB) or small (~100 MB)
#   BENCH_SYSTEM_MB  size of the copy of /usr/lib/python3*, /usr/share (and
#                    /usr/lib/x86_64-linux-gnu to fill up); default 950 (full) / 85 (small)
#   BENCH_DB_MB      size of the generated SQLite database; default 50 (full) / 10 (small)
#   BENCH_NOTES      generated markdown files; default 300
#   RUNS             repetitions of each repeatable step; the median is reported (default 3)
#   RUNS_FIRST       repetitions of the first backup, each into a fresh repository
#                    (default: RUNS at small scale, 1 at full scale)
#   TOOLS            which tools to run (default "snap restic borg"; add snap-enc for
#                    an encrypted snap repository, passphrase from SNAP_PASSWORD_FILE)
#   SNAP_BIN         snap binary (default: target/release/snap, built with cargo build --release)
#   BENCH_NO_BUILD   set to 1 to skip cargo build --release
#   RESTIC_PASSWORD  password for the restic repository (default "snap-bench")
#   BENCH_GENERATE_ONLY  set to 1 to only generate $BENCH_DIR/pristine and stop
#
# What is measured, per tool: wall seconds and peak RSS (/usr/bin/time's
# "Maximum resident set size", %M) of
#   (a) first backup into an empty repository
#   (b) second backup with nothing changed
#   (c) backup after a small change (one markdown file edited, 500 rows inserted in the database)
#   (d) full restore of the latest snapshot into an empty folder
#   (e) restore of a single markdown file
# plus the repository size (du -sb) and the size of each tool's local cache.
# Times are medians over the runs; RSS is the largest value seen.
#
# Caches are NOT dropped between runs (that needs root and disturbs the rest of
# the machine): the data is read once before timing starts, so every tool
# sees warm-page-cache behaviour, which is what a backup after a work session
# on a desktop sees too. Disk-bound cold-cache numbers will differ. Before each
# first backup and each restore, `sync` (untimed) writes back what earlier
# steps left dirty, so no tool pays for another's writeback.
#
# Fairness notes: restic always encrypts (AES-256 + Poly1305); snap and borg
# run unencrypted here (snap init without --encrypt, borg --encryption none).
# restic uses --compression auto, borg -C zstd,3, snap its default (zstd 3).
# All tools use their default thread counts. Steps run tool after tool on the
# same data; each change in (c) is applied once and then backed up by every tool.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${BENCH_DIR:-/tmp/snap-bench}
SCALE=${BENCH_SCALE:-full}
case $SCALE in
  full) SYSTEM_MB=${BENCH_SYSTEM_MB:-950}; DB_MB=${BENCH_DB_MB:-50}; RUNS_FIRST=${RUNS_FIRST:-1} ;;
  small) SYSTEM_MB=${BENCH_SYSTEM_MB:-85}; DB_MB=${BENCH_DB_MB:-10}; RUNS_FIRST=${RUNS_FIRST:-${RUNS:-3}} ;;
  *) echo "BENCH_SCALE must be full or small, not '$SCALE'" >&2; exit 2 ;;
esac
NOTES=${BENCH_NOTES:-300}
RUNS=${RUNS:-3}
TOOLS=${TOOLS:-snap restic borg}
SNAP=${SNAP_BIN:-$ROOT/target/release/snap}
export RESTIC_PASSWORD=${RESTIC_PASSWORD:-snap-bench}

PRISTINE=$WORK/pristine   # generated once per size, never modified
DATA=$WORK/data           # fresh copy for every run of the script
REPOS=$WORK/repos
CACHES=$WORK/caches
RESTORES=$WORK/restore
LOGS=$WORK/logs
RES=$WORK/measurements

# restic and borg keep their caches inside the work dir, not in ~/.cache.
export BORG_BASE_DIR=$CACHES/borg-base
if [[ -z ${SNAP_PASSWORD_FILE:-} ]]; then
  mkdir -p "$WORK"; echo "$RESTIC_PASSWORD" > "$WORK/snap-password"
  export SNAP_PASSWORD_FILE=$WORK/snap-password
fi
export BORG_CACHE_DIR=$CACHES/borg
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=NO
RESTIC_CACHE=$CACHES/restic

# say, build_snap, measure, summary, cell, ratio, snap_version, mib
# shellcheck source=bench-lib.sh
source "$ROOT/benches/scripts/bench-lib.sh"

# --- prerequisites ----------------------------------------------------------

install_missing() {
  local missing=()
  command -v restic >/dev/null || missing+=(restic)
  command -v borg >/dev/null || missing+=(borgbackup)
  [[ -x /usr/bin/time ]] || missing+=(time)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)
  command -v python3 >/dev/null || missing+=(python3)
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# --- data -------------------------------------------------------------------

generate_pristine() {
  local marker=$PRISTINE/.generated-$SYSTEM_MB-$DB_MB-$NOTES
  [[ -e $marker ]] && return 0
  say "generating data in $PRISTINE (system ${SYSTEM_MB} MB, database ${DB_MB} MB, $NOTES notes)"
  rm -rf "$PRISTINE"
  mkdir -p "$PRISTINE/system" "$PRISTINE/entity"
  python3 - "$PRISTINE" "$SYSTEM_MB" "$DB_MB" "$NOTES" <<'PY'
import glob, os, random, shutil, sqlite3, stat, sys

out, system_mb, db_mb, notes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

# A subset of the system's own files: python stdlib, /usr/share, then shared
# libraries to fill up. Each root gets an equal share of what is left; walk
# order is sorted, so the same budget always selects the same files.
def copy_tree(src, dst, budget):
    used = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src)
        target_dir = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target_dir, exist_ok=True)
        for name in sorted(filenames):
            if used >= budget:
                return used
            path = os.path.join(dirpath, name)
            target = os.path.join(target_dir, name)
            try:
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(path), target)
                elif stat.S_ISREG(st.st_mode) and used + st.st_size <= budget:
                    shutil.copy2(path, target)
                    used += st.st_size
            except OSError:
                pass
    return used

roots = [("python", sorted(glob.glob("/usr/lib/python3*"))), ("share", ["/usr/share"]),
         ("lib", ["/usr/lib/x86_64-linux-gnu"])]
remaining = system_mb << 20
for i, (name, paths) in enumerate(roots):
    share = remaining // (len(roots) - i)
    for p in paths:
        used = copy_tree(p, os.path.join(out, "system", name, os.path.basename(p)), share // len(paths))
        remaining -= used
        share -= used

# The "entity": markdown notes and a SQLite database of conversation messages.
rng = random.Random(42)
WORDS = ("the of and to a in is it you that he was for on are with as I his they be at one have this "
         "from or had by word but what some we can out other were all there when up use your how said an "
         "each she which do their time if will way about many then them write would like so these her long "
         "make thing see him two has look more day could go come did number sound no most people my over "
         "know water than call first who may down side been now find any new work part take get place made "
         "live where after back little only round man year came show every good me give our under name very "
         "through just form sentence great think say help low line differ turn cause much mean before move "
         "right boy old too same tell does set three want air well also play small end put home read hand "
         "memory garden letter morning quiet remember conversation together tomorrow yesterday feeling "
         "river window music dream journal promise gentle curious laugh light moment story").split()

def sentence():
    words = rng.choices(WORDS, k=rng.randint(6, 22))
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])

def paragraph():
    return " ".join(sentence() for _ in range(rng.randint(2, 7)))

entity = os.path.join(out, "entity")
for folder in ("notes", "memories", "journal"):
    os.makedirs(os.path.join(entity, folder), exist_ok=True)
for i in range(notes):
    folder = ("notes", "memories", "journal")[i % 3]
    lines = [f"# {sentence()[:-1]}", "", f"tags: {', '.join(rng.sample(WORDS, 3))}", ""]
    for _ in range(rng.randint(2, 14)):
        lines += ([f"## {sentence()[:-1]}"] if rng.random() < 0.2 else [])
        lines += ([f"- {sentence()}" for _ in range(rng.randint(2, 5))] if rng.random() < 0.3 else [paragraph()])
        lines.append("")
    with open(os.path.join(entity, folder, f"{folder[:-1] if folder != 'journal' else 'entry'}-{i:03d}.md"), "w") as f:
        f.write("\n".join(lines))
with open(os.path.join(entity, "identity.md"), "w") as f:
    f.write("# Identity\n\n" + "\n\n".join(paragraph() for _ in range(8)) + "\n")

db = sqlite3.connect(os.path.join(entity, "conversations.db"))
db.execute("PRAGMA journal_mode=WAL")
db.executescript("""
CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL, started_at TEXT NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL REFERENCES conversations(id),
                       role TEXT NOT NULL, created_at TEXT NOT NULL, content TEXT NOT NULL);
CREATE INDEX messages_by_conversation ON messages(conversation_id, created_at);
""")
conversation, t = 0, 1_700_000_000
while True:
    conversation += 1
    db.execute("INSERT INTO conversations VALUES (?, ?, datetime(?, 'unixepoch'))",
               (conversation, sentence()[:60], t))
    rows = []
    for _ in range(rng.randint(10, 80)):
        t += rng.randint(5, 600)
        rows.append((conversation, rng.choice(("user", "assistant")), t,
                     "\n\n".join(paragraph() for _ in range(rng.randint(1, 4)))))
    db.executemany("INSERT INTO messages (conversation_id, role, created_at, content) "
                   "VALUES (?, ?, datetime(?, 'unixepoch'), ?)", rows)
    db.commit()
    if conversation % 20 == 0:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        if pages * db.execute("PRAGMA page_size").fetchone()[0] >= db_mb << 20:
            break
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
db.close()
PY
  touch "$marker"
}

# The small change of step (c), number $1: append to one note, insert 500 messages.
apply_change() {
  local n=$1
  local note
  note=$(find "$DATA/entity/notes" -name '*.md' | sort | sed -n "$((n * 7 % NOTES / 3 + 1))p")
  printf '\n## Edit %s\n\nAdded after the first snapshot: a short paragraph about the garden in the morning.\n' "$n" >>"$note"
  python3 - "$DATA/entity/conversations.db" "$n" <<'PY'
import random, sqlite3, sys
rng = random.Random(int(sys.argv[2]))
words = "we talked about the garden and the letter you wrote this morning it was quiet and kind".split()
db = sqlite3.connect(sys.argv[1])
cid = db.execute("SELECT max(id) FROM conversations").fetchone()[0]
db.executemany("INSERT INTO messages (conversation_id, role, created_at, content) VALUES (?, ?, datetime('now'), ?)",
               [(cid, "assistant", " ".join(rng.choices(words, k=rng.randint(20, 200)))) for _ in range(500)])
db.commit()
db.close()
PY
}

# --- measuring --------------------------------------------------------------

# Every tool's commands, with one signature so the scenarios can loop over tools.
repo_of() { echo "$REPOS/$1"; }
LAST_BORG_ARCHIVE=
BORG_COUNT=0

tool_reset() { # remove repository and cache, then init (untimed)
  local tool=$1 repo
  repo=$(repo_of "$tool")
  rm -rf "$repo"
  case $tool in
    snap) "$SNAP" -r "$repo" init >"$LOGS/snap.init.log" 2>&1 ;;
    snap-enc) "$SNAP" -r "$repo" init --encrypt >"$LOGS/snap-enc.init.log" 2>&1 ;;
    restic) rm -rf "$RESTIC_CACHE"
      restic -r "$repo" --cache-dir "$RESTIC_CACHE" init >"$LOGS/restic.init.log" 2>&1 ;;
    borg) rm -rf "$BORG_CACHE_DIR" "$BORG_BASE_DIR"
      borg init --encryption none "$repo" >"$LOGS/borg.init.log" 2>&1 ;;
  esac || { say "FAILED: $tool init (log: $LOGS/$tool.init.log)"; tail -n 5 "$LOGS/$tool.init.log" >&2; }
  sync
}

tool_backup() {
  local tool=$1 key=$2 repo
  repo=$(repo_of "$tool")
  case $tool in
    snap | snap-enc) measure "$key.$tool" "$SNAP" -r "$repo" backup "$DATA/system" "$DATA/entity" ;;
    restic) measure "$key.$tool" restic -r "$repo" --cache-dir "$RESTIC_CACHE" --compression auto \
      backup "$DATA/system" "$DATA/entity" ;;
    borg) BORG_COUNT=$((BORG_COUNT + 1)); LAST_BORG_ARCHIVE=b$BORG_COUNT
      measure "$key.$tool" borg create -C zstd,3 "$repo::$LAST_BORG_ARCHIVE" "$DATA/system" "$DATA/entity" ;;
  esac
}

# Where a full restore into $2 puts the backed-up folder $DATA.
restored_data_dir() {
  case $1 in
    snap | snap-enc) echo "$2" ;;
    restic | borg) echo "$2$DATA" ;;
  esac
}

tool_restore_all() {
  local tool=$1 target=$2 repo
  repo=$(repo_of "$tool")
  case $tool in
    snap | snap-enc) measure "d.$tool" "$SNAP" -r "$repo" restore latest --target "$target" ;;
    restic) measure "d.$tool" restic -r "$repo" --cache-dir "$RESTIC_CACHE" restore latest --target "$target" ;;
    borg) measure "d.$tool" env -C "$target" borg extract "$repo::$LAST_BORG_ARCHIVE" ;;
  esac
}

# Restores entity/$REL (one file) into $2; it must end up where restored_file says.
tool_restore_file() {
  local tool=$1 target=$2 repo
  repo=$(repo_of "$tool")
  case $tool in
    snap | snap-enc) measure "e.$tool" "$SNAP" -r "$repo" restore "latest:entity/$REL" --target "$target" ;;
    restic) measure "e.$tool" restic -r "$repo" --cache-dir "$RESTIC_CACHE" restore latest \
      --target "$target" --include "$DATA/entity/$REL" ;;
    borg) measure "e.$tool" env -C "$target" borg extract "$repo::$LAST_BORG_ARCHIVE" "${DATA#/}/entity/$REL" ;;
  esac
}

restored_file() {
  case $1 in
    snap | snap-enc) echo "$2/$(basename "$REL")" ;;
    restic | borg) echo "$2$DATA/entity/$REL" ;;
  esac
}

# Compares a full restore with the data; the database is compared by content,
# since a consistent online copy need not be byte-identical.
verify_restore() {
  local tool=$1 dir=$2 problems=""
  for part in system entity; do
    if ! diff -rq --no-dereference --exclude='conversations.db*' "$DATA/$part" "$dir/$part" \
      >"$LOGS/verify.$tool.$part.log" 2>&1; then
      problems+="$part differs ($(wc -l <"$LOGS/verify.$tool.$part.log") lines in $LOGS/verify.$tool.$part.log); "
    fi
  done
  local want got
  # immutable=1: reading the source must not create -shm/-wal files next to it.
  want=$(sqlite3 "file:$DATA/entity/conversations.db?immutable=1" 'SELECT count(*), sum(length(content)) FROM messages')
  got=$(sqlite3 "$dir/entity/conversations.db" 'PRAGMA integrity_check; SELECT count(*), sum(length(content)) FROM messages' 2>&1 | tr '\n' ' ')
  [[ $got == "ok $want " ]] || problems+="database: want '$want', got '$got'; "
  if [[ -z $problems ]]; then
    if cmp -s "$DATA/entity/conversations.db" "$dir/entity/conversations.db"; then
      VERIFY[$tool]="identical"
    else
      VERIFY[$tool]="identical (database equal by content, not byte for byte)"
    fi
  else
    VERIFY[$tool]="MISMATCH: $problems"
  fi
}

# --- reporting --------------------------------------------------------------

# size_row LABEL ARRAY: a table row of byte counts per tool, with ratios to snap.
size_row() {
  local -n values=$2
  local out="| $1 |" t
  for t in snap restic borg; do
    if [[ ${values[$t]} == - ]]; then out+=" - |"; else out+=" $(mib "${values[$t]}") |"; fi
  done
  for t in restic borg; do
    if [[ ${values[$t]} == - || ${values[snap]} == - || ${values[snap]} == 0 ]]; then
      out+=" - |"
    else
      out+=" $(awk -v a="${values[$t]}" -v b="${values[snap]}" 'BEGIN {printf "%.2fx", a / b}') |"
    fi
  done
  echo "$out"
}

# shellcheck disable=SC2034 # size and cache are read through the nameref in size_row
report() {
  local -a labels=("(a) first backup" "(b) backup, nothing changed" "(c) backup after small change"
    "(d) full restore" "(e) restore one file")
  local -a keys=(a b c d e)
  local data_bytes files
  data_bytes=$(du -sb "$PRISTINE/system" "$PRISTINE/entity" | awk '{s += $1} END {print s}')
  files=$(find "$PRISTINE/system" "$PRISTINE/entity" -type f | wc -l)
  echo "## snap vs restic vs borg ($SCALE scale)"
  echo
  echo "- data: $(mib "$data_bytes") in $files files ($(du -sb "$PRISTINE/entity" | awk '{printf "%.1f", $1/1048576}') MiB of it the entity folder with a $(mib "$(stat -c %s "$PRISTINE/entity/conversations.db")") SQLite database)"
  echo "- runs: first backup ${RUNS_FIRST}x, other steps ${RUNS}x; median wall time, largest peak RSS; warm page cache"
  echo "- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- versions: $(snap_version), $(restic version | cut -d' ' -f1-2), $(borg --version)"
  echo "- restic encrypts (always); snap and borg are unencrypted here"
  echo
  echo "| step | snap | restic | borg | restic/snap | borg/snap |"
  echo "|---|---|---|---|---|---|"
  local i
  for i in "${!keys[@]}"; do
    local k=${keys[$i]} s r b
    s=$(summary "$k.snap"); r=$(summary "$k.restic"); b=$(summary "$k.borg")
    echo "| ${labels[$i]} | $(cell "$s") | $(cell "$r") | $(cell "$b") | $(ratio "$r" "$s") | $(ratio "$b" "$s") |"
  done
  local -A size cache
  local tool
  for tool in snap restic borg; do
    size[$tool]=-; cache[$tool]=-
    if [[ ! -d $(repo_of "$tool") || " $TOOLS " != *" $tool "* ]]; then continue; fi
    case $tool in
      snap) size[$tool]=$(du -sb --exclude=cache "$(repo_of snap)" | cut -f1)
        cache[$tool]=$( (du -sb "$(repo_of snap)/cache" 2>/dev/null || echo 0) | cut -f1) ;;
      restic) size[$tool]=$(du -sb "$(repo_of restic)" | cut -f1)
        cache[$tool]=$(du -sb "$RESTIC_CACHE" | cut -f1) ;;
      borg) size[$tool]=$(du -sb "$(repo_of borg)" | cut -f1)
        cache[$tool]=$(du -sb "$BORG_CACHE_DIR" "$BORG_BASE_DIR" 2>/dev/null | awk '{s += $1} END {print s + 0}') ;;
    esac
  done
  size_row "repository size (du -sb)" size
  size_row "local cache size (snap: repo/cache, not counted above)" cache
  if [[ " $TOOLS " == *" snap-enc "* ]]; then
    echo
    echo "Encrypted snap (passphrase; age, keyed ids) against unencrypted snap and restic, same run:"
    echo
    echo "| step | snap encrypted | snap encrypted/snap (time) | restic/snap encrypted |"
    echo "|---|---|---|---|"
    for i in "${!keys[@]}"; do
      local k=${keys[$i]} e s r
      e=$(summary "$k.snap-enc"); s=$(summary "$k.snap"); r=$(summary "$k.restic")
      echo "| ${labels[$i]} | $(cell "$e") | $(ratio "$e" "$s") | $(ratio "$r" "$e") |"
    done
    echo
    echo "- snap encrypted repository size: $(mib "$(du -sb --exclude=cache "$(repo_of snap-enc)" | cut -f1)")"
  fi
  echo
  echo "Snapshots in each repository at the end: 1 first + ${RUNS} unchanged + ${RUNS} after a change."
  for tool in $TOOLS; do
    echo "- $tool full restore: ${VERIFY[$tool]:-not verified}"
  done
}

# --- main -------------------------------------------------------------------

main() {
  install_missing
  build_snap
  generate_pristine
  # Other benchmarks (bench-drill.sh) reuse the same data.
  [[ ${BENCH_GENERATE_ONLY:-0} == 1 ]] && return 0
  rm -rf "$DATA" "$REPOS" "$RESTORES" "$LOGS" "$RES"
  mkdir -p "$DATA" "$REPOS" "$RESTORES" "$LOGS" "$RES" "$CACHES"
  say "copying the data to $DATA"
  cp -a "$PRISTINE/system" "$PRISTINE/entity" "$DATA/"
  # Read everything once so no tool pays for a cold page cache.
  tar -cf - -C "$DATA" . | cat >/dev/null
  declare -gA VERIFY=()
  REL=$(cd "$DATA/entity" && find notes -name '*.md' | sort | sed -n 2p)
  local run tool

  say "(a) first backup, ${RUNS_FIRST}x"
  for ((run = 1; run <= RUNS_FIRST; run++)); do
    for tool in $TOOLS; do
      tool_reset "$tool"
      tool_backup "$tool" a
    done
  done
  say "(b) backup with nothing changed, ${RUNS}x"
  for ((run = 1; run <= RUNS; run++)); do
    for tool in $TOOLS; do tool_backup "$tool" b; done
  done
  say "(c) backup after a small change, ${RUNS}x"
  for ((run = 1; run <= RUNS; run++)); do
    apply_change "$run"
    for tool in $TOOLS; do tool_backup "$tool" c; done
  done
  say "(d) full restore, ${RUNS}x"
  for ((run = 1; run <= RUNS; run++)); do
    for tool in $TOOLS; do
      local target=$RESTORES/$tool-full
      rm -rf "$target" && mkdir -p "$target" && sync
      tool_restore_all "$tool" "$target"
      if ((run == 1)); then verify_restore "$tool" "$(restored_data_dir "$tool" "$target")"; fi
    done
  done
  say "(e) restore one file (entity/$REL), ${RUNS}x"
  for ((run = 1; run <= RUNS; run++)); do
    for tool in $TOOLS; do
      local target=$RESTORES/$tool-file
      rm -rf "$target" && mkdir -p "$target" && sync
      tool_restore_file "$tool" "$target"
      if ((run == 1)) && ! cmp -s "$DATA/entity/$REL" "$(restored_file "$tool" "$target")"; then
        say "MISMATCH: $tool single-file restore of entity/$REL"
        VERIFY[$tool]="${VERIFY[$tool]:-}; single-file restore MISMATCH"
      fi
    done
  done
  rm -rf "$RESTORES"

  local out
  out=$WORK/results-$(date +%Y%m%d-%H%M%S).md
  report | tee "$out"
  say "saved to $out; logs in $LOGS"
}

main "$@"
