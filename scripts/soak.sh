#!/usr/bin/env bash
# Soak: kill -9 loops against the real binary and the real SQLite store, for N rounds of each
# kind, then a tally: acknowledged, present, lost, partial, divergent.
#
#   scripts/soak.sh [ROUNDS] [KINDS]        # defaults: 1000 rounds; record,import,project,rebuild
#   SOAK_DIR=/tmp/soak scripts/soak.sh 50 record
#   SOAK_BUILD=0 ...                        # use target/release/pipeline-ledger as it is
#   SOAK_BIN=/path/to/pipeline-ledger ...   # use that binary (a copy, so that rebuilding the
#                                           # tree during a long soak does not swap it mid-run)
#
# Kinds:
#   record   a loop of `record` (SOAK_WRITERS of them at once, default 2) on a store of at least
#            10k events is killed at a random moment; every record that printed its result must
#            be in the log.
#   import   an import of at least 200k events into an empty store is killed at a random moment;
#            the store then holds all of the file's events or none.
#   project  `project` from scratch on a store of at least 20k events is killed at a random
#            moment; a second `project` must then bring the read models to equal a rebuild.
#   rebuild  the same with `rebuild` over up-to-date read models.
#
# Every round also runs `PRAGMA integrity_check` on the store (and on the read models for
# project and rebuild). The read models are compared table by table (every rm_ table but the
# staging ones; the checkpoint's and kept reports' clock columns and report bodies aside) with
# a reference rebuilt once into its own file. Needs: cargo, sqlite3, shuf.
#
# The dataset is the demo generator's (`pipeline-ledger demo`), kept in $SOAK_DIR/data between
# runs. Exit status 1 if anything was lost, partial or divergent.
set -euo pipefail

ROUNDS=${1:-1000}
KINDS=${2:-record,import,project,rebuild}
SOAK_DIR=${SOAK_DIR:-${TMPDIR:-/tmp}/pipeline-ledger-soak}
WRITERS=${SOAK_WRITERS:-2}
# Customers for each dataset: the demo makes about 5 events per customer.
RECORD_CUSTOMERS=${SOAK_RECORD_CUSTOMERS:-2100}    # >= 10k events
IMPORT_CUSTOMERS=${SOAK_IMPORT_CUSTOMERS:-42000}   # >= 200k events
PROJECT_CUSTOMERS=${SOAK_PROJECT_CUSTOMERS:-4200}  # >= 20k events

cd "$(dirname "$0")/.."
for tool in cargo sqlite3 shuf; do
  command -v "$tool" >/dev/null || { echo "soak.sh needs $tool" >&2; exit 2; }
done
if [[ -n ${SOAK_BIN:-} ]]; then
  BIN=$(realpath "$SOAK_BIN")
else
  [[ ${SOAK_BUILD:-1} == 0 ]] || cargo build --release --locked --quiet
  BIN=$PWD/target/release/pipeline-ledger
fi
mkdir -p "$SOAK_DIR/data"
DATA=$SOAK_DIR/data
WORK=$SOAK_DIR/work
rm -rf "$WORK"
mkdir -p "$WORK"

declare -A ACKED PRESENT LOST PARTIAL DIVERGENT RUN
for kind in record import project rebuild; do
  ACKED[$kind]=0; PRESENT[$kind]=0; LOST[$kind]=0; PARTIAL[$kind]=0; DIVERGENT[$kind]=0
  RUN[$kind]=0
done

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

count_events() { # store
  sqlite3 -cmd ".timeout 10000" "$1" "SELECT count(*) FROM events" 2>/dev/null ||
    "$BIN" --store "$1" export | wc -l
}

integrity() { # db kind
  local result
  result=$(sqlite3 -cmd ".timeout 10000" "$1" "PRAGMA integrity_check" 2>&1 || true)
  if [[ $result != ok ]]; then
    log "$2: integrity_check of $1: $result"
    DIVERGENT[$2]=$((DIVERGENT[$2] + 1))
  fi
}

# A random delay in milliseconds, below $1.
random_ms() { shuf -i 0-"$(( $1 > 0 ? $1 - 1 : 0 ))" -n 1; }

# Kills a process group with SIGKILL and waits until every process in it is gone (the kernel
# releases a killed process's file locks only when it has exited).
kill_group() { # pgid
  kill -9 -- "-$1" 2>/dev/null || true
  while kill -0 -- "-$1" 2>/dev/null; do sleep 0.01; done
}

sleep_ms() { sleep "$(printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )))"; }

# A demo store of N customers, and its export; both kept between runs.
dataset() { # name customers min_events
  local store=$DATA/$1.db
  if [[ ! -s $DATA/$1.ndjson ]]; then
    log "generating $1: $2 customers"
    rm -f "$store" "$store"-* "$DATA/$1".read-models.db*
    "$BIN" --store "$store" --read-models "$DATA/$1.read-models.db" demo --customers "$2" \
      --seed 7 >/dev/null
    "$BIN" --store "$store" export -o "$DATA/$1.ndjson.partial"
    mv "$DATA/$1.ndjson.partial" "$DATA/$1.ndjson"
  fi
  local events
  events=$(wc -l <"$DATA/$1.ndjson")
  if (( events < $3 )); then
    echo "dataset $1 has $events events, fewer than $3: raise its customers" >&2
    exit 2
  fi
  log "dataset $1: $events events"
}

# The read models as sorted text: every rm_ table, clock columns and report bodies aside.
dump_read_models() { # read-models-file
  local db=$1 table
  for table in $(sqlite3 "$db" "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm\_%' ESCAPE '\' AND name NOT LIKE 'rm\_new\_%' ESCAPE '\' ORDER BY name"); do
    case $table in
      rm_checkpoints) sqlite3 "$db" "SELECT '$table', projection, position, log_time FROM $table" ;;
      rm_reports) sqlite3 "$db" "SELECT '$table', name, position, policy FROM $table" ;;
      *) sqlite3 "$db" "SELECT '$table', * FROM $table" ;;
    esac
  done | LC_ALL=C sort
}

# ---- record ---------------------------------------------------------------------------------

record_loop() { # store acks-file writer round
  local i=0 id out
  while true; do
    id=$(cat /proc/sys/kernel/random/uuid)
    if out=$("$BIN" --store "$1" record lead-sourced --customer "soak-$4-$3-$i" --rep rep-01 \
      --deal d1 --source referral --company "Soak $i" --contact-name "Kill Nine" \
      --event-id "$id" 2>/dev/null) && [[ -n $out ]]; then
      echo "$id" >>"$2"
    fi
    i=$((i + 1))
  done
}

soak_record() {
  local store=$WORK/record/ledger.db round acks delay w pids
  mkdir -p "$WORK/record"
  rm -f "$store" "$store"-*
  cp "$DATA/record.db" "$store"
  [[ -e $DATA/record.db-wal ]] && cp "$DATA/record.db-wal" "$store-wal"
  for ((round = 1; round <= ROUNDS; round++)); do
    acks=$WORK/record/acks.$round
    : >"$acks"
    pids=()
    for ((w = 0; w < WRITERS; w++)); do
      setsid bash -c "$(declare -f record_loop); BIN='$BIN'; record_loop '$store' '$acks' $w $round" &
      pids+=($!)
    done
    LIVE_PGIDS="${pids[*]}"
    delay=$((50 + $(random_ms 1500)))
    sleep_ms "$delay"
    for pid in "${pids[@]}"; do kill_group "$pid"; done
    wait "${pids[@]}" 2>/dev/null || true
    integrity "$store" record
    local acked present
    acked=$(wc -l <"$acks")
    if ((acked > 0)); then
      # event_id is stored as the UUID's 16 bytes.
      present=$(sqlite3 -cmd ".timeout 10000" "$store" \
        "SELECT count(*) FROM events WHERE event_id IN ($(sed "s/-//g; s/.*/X'&'/" "$acks" | paste -sd,))" 2>/dev/null ||
        "$BIN" --store "$store" export | grep -cFf "$acks")
    else
      present=0
    fi
    ACKED[record]=$((ACKED[record] + acked))
    PRESENT[record]=$((PRESENT[record] + present))
    LOST[record]=$((LOST[record] + acked - present))
    if ((present != acked)); then log "record round $round: $((acked - present)) of $acked acknowledged records lost"; fi
    RUN[record]=$round
    if ((round % 50 == 0)); then log "record: $round rounds, ${ACKED[record]} acknowledged, ${LOST[record]} lost"; fi
  done
  # The store still takes a record after all the kills.
  "$BIN" --store "$store" record lead-sourced --customer soak-after --rep rep-01 --deal d1 \
    --source referral --company After --contact-name After >/dev/null ||
    { log "record: the store refuses a record after the kills"; DIVERGENT[record]=$((DIVERGENT[record] + 1)); }
}

# ---- import ---------------------------------------------------------------------------------

soak_import() {
  local dir=$WORK/import store file=$DATA/import.ndjson total started duration round delay n
  mkdir -p "$dir"
  store=$dir/ledger.db
  total=$(wc -l <"$file")
  # How long one import takes, to spread the kills over it (and a little past its end).
  rm -f "$store" "$store"-*
  "$BIN" --store "$store" init >/dev/null
  started=$(date +%s%N)
  "$BIN" --store "$store" import "$file" >/dev/null
  duration=$((($(date +%s%N) - started) / 1000000))
  log "import: one import of $total events takes $duration ms"
  for ((round = 1; round <= ROUNDS; round++)); do
    rm -f "$store" "$store"-*
    "$BIN" --store "$store" init >/dev/null
    setsid "$BIN" --store "$store" import "$file" >"$dir/out" 2>&1 &
    local pid=$!
    LIVE_PGIDS=$pid
    delay=$(random_ms $((duration * 11 / 10)))
    sleep_ms "$delay"
    kill_group "$pid"
    local status=0
    wait "$pid" || status=$?
    integrity "$store" import
    n=$(count_events "$store")
    if ((status == 0)); then
      ACKED[import]=$((ACKED[import] + total))
      if ((n != total)); then
        log "import round $round: acknowledged, but $n of $total events present"
        LOST[import]=$((LOST[import] + total - n))
      fi
    fi
    if ((n == total)); then
      PRESENT[import]=$((PRESENT[import] + total))
    elif ((n != 0)); then
      log "import round $round: killed after $delay ms with $n of $total events present"
      PARTIAL[import]=$((PARTIAL[import] + 1))
    fi
    RUN[import]=$round
    if ((round % 25 == 0)); then log "import: $round rounds, ${PARTIAL[import]} partial"; fi
  done
}

# ---- project and rebuild --------------------------------------------------------------------

soak_projection() { # project|rebuild
  local kind=$1 dir=$WORK/$1 store rm started duration round delay
  mkdir -p "$dir"
  store=$dir/ledger.db
  rm=$dir/ledger.read-models.db
  cp "$DATA/project.db" "$store"
  if [[ ! -s $DATA/project.reference ]]; then
    rm -f "$DATA/reference.read-models.db"*
    "$BIN" --store "$store" --read-models "$DATA/reference.read-models.db" rebuild >/dev/null
    dump_read_models "$DATA/reference.read-models.db" >"$DATA/project.reference"
  fi
  rm -f "$rm" "$rm"-*
  started=$(date +%s%N)
  "$BIN" --store "$store" --read-models "$rm" "$kind" >/dev/null
  duration=$((($(date +%s%N) - started) / 1000000))
  log "$kind: one run takes $duration ms"
  for ((round = 1; round <= ROUNDS; round++)); do
    if [[ $kind == project ]]; then rm -f "$rm" "$rm"-*; fi
    setsid "$BIN" --store "$store" --read-models "$rm" "$kind" >"$dir/out" 2>&1 &
    local pid=$!
    LIVE_PGIDS=$pid
    delay=$(random_ms $((duration * 11 / 10)))
    sleep_ms "$delay"
    kill_group "$pid"
    wait "$pid" 2>/dev/null || true
    integrity "$store" "$kind"
    if [[ -e $rm ]]; then integrity "$rm" "$kind"; fi
    if ! "$BIN" --store "$store" --read-models "$rm" project >"$dir/out" 2>&1; then
      log "$kind round $round: project after the kill failed: $(cat "$dir/out")"
      DIVERGENT[$kind]=$((DIVERGENT[$kind] + 1))
    elif ! dump_read_models "$rm" | cmp -s - "$DATA/project.reference"; then
      log "$kind round $round: killed after $delay ms; the read models differ from a rebuild"
      dump_read_models "$rm" | diff - "$DATA/project.reference" | head -5 >&2 || true
      DIVERGENT[$kind]=$((DIVERGENT[$kind] + 1))
    fi
    RUN[$kind]=$round
    if ((round % 50 == 0)); then log "$kind: $round rounds, ${DIVERGENT[$kind]} divergent"; fi
  done
}

tally() {
  printf '\n%-8s %7s %13s %10s %5s %8s %10s\n' kind rounds acknowledged present lost partial divergent
  for kind in record import project rebuild; do
    [[ ,$KINDS, == *,$kind,* ]] || continue
    printf '%-8s %7d %13d %10d %5d %8d %10d\n' "$kind" "${RUN[$kind]}" "${ACKED[$kind]}" \
      "${PRESENT[$kind]}" "${LOST[$kind]}" "${PARTIAL[$kind]}" "${DIVERGENT[$kind]}"
  done
  echo "(record, import: events; project, rebuild: rounds whose read models differ from a rebuild)"
}
# Interrupted: stop what this script started, then print the tally of the rounds finished.
LIVE_PGIDS=
trap 'for p in $LIVE_PGIDS; do kill -9 -- "-$p" 2>/dev/null; done; tally; exit 130' INT TERM

[[ ,$KINDS, == *,record,* ]] && { dataset record "$RECORD_CUSTOMERS" 10000; soak_record; }
[[ ,$KINDS, == *,import,* ]] && { dataset import "$IMPORT_CUSTOMERS" 200000; soak_import; }
if [[ ,$KINDS, == *,project,* || ,$KINDS, == *,rebuild,* ]]; then
  dataset project "$PROJECT_CUSTOMERS" 20000
  [[ ,$KINDS, == *,project,* ]] && soak_projection project
  [[ ,$KINDS, == *,rebuild,* ]] && soak_projection rebuild
fi
tally
bad=0
for kind in record import project rebuild; do
  bad=$((bad + LOST[$kind] + PARTIAL[$kind] + DIVERGENT[$kind]))
done
exit $((bad > 0))
