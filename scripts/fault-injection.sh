#!/usr/bin/env bash
# I/O fault injection, the whole loop: for record, import, project and rebuild, fail the n-th
# write, sync (fsync/fdatasync), read and truncate on the store's files for every n = 1, 2, …
# until the command no longer makes an n-th such call; with EIO, then ENOSPC; then with a disk
# that stays broken from the n-th call on. After each fault tests/fault_injection.rs checks the
# store (integrity_check, opens, every acknowledged event, no partial append) and that the read
# models equal a rebuild. CI runs the same test over a bounded set of n.
#
#   scripts/fault-injection.sh                 # everything (long: thousands of cases)
#   FAULT_KINDS=sync scripts/fault-injection.sh
#   FAULT_OPS=record,import scripts/fault-injection.sh
#
# Needs gcc (the shim, tests/faults/nth_fault.c, is compiled by the test).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gcc >/dev/null || { echo "fault-injection.sh needs gcc" >&2; exit 2; }
export FAULT_FULL=1
export FAULT_KINDS=${FAULT_KINDS:-write,sync,read,truncate}
ops=${FAULT_OPS:-record,import,project,rebuild}
filters=()
for op in ${ops//,/ }; do filters+=("faults_during_$op"); done
cargo test --release --locked --test fault_injection --no-run
for mode in "EIO 0" "ENOSPC 0" "EIO 1"; do
  read -r errno persist <<<"$mode"
  echo "== $errno$([[ $persist == 1 ]] && echo ', persistent')" >&2
  FAULT_ERRNO=$errno FAULT_PERSIST=$persist \
    cargo test --release --locked --test fault_injection -- "${filters[@]}" --nocapture \
    --test-threads="${FAULT_THREADS:-2}"
done
