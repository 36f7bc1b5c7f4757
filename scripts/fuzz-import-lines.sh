#!/usr/bin/env bash
# Differential fuzzing of the import line parser, long run: the fast path of
# src/contract/line/fast.rs (through LineValidator::parse) against the full path (Value, schema,
# typed decoding), on arbitrary bytes and mutated valid lines. It runs the same seeded test CI
# runs (tests/schemas/fuzz_lines.rs) with more cases, in release, on every core.
#
#   scripts/fuzz-import-lines.sh                      # 10^7 cases, seed 1
#   FUZZ_CASES=100000000 FUZZ_SEED=7 scripts/fuzz-import-lines.sh
#   FUZZ_SEED=7 FUZZ_CHUNK=123 scripts/fuzz-import-lines.sh   # replay the chunk a failure names
#
# A failure prints the seed, the chunk and the line. No nightly toolchain is needed; where
# `cargo fuzz` exists it can be pointed at the same comparison, but this script does not need it.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_CASES=${FUZZ_CASES:-10000000}
export FUZZ_SEED=${FUZZ_SEED:-1}
exec cargo test --release --locked --test schemas -- \
  fuzz_lines::the_fast_path_never_accepts_more_or_differently_than_the_full_path \
  --exact --nocapture
