#!/usr/bin/env bash
# The whole test suite, as a new user and CI run it: installs what the tests drive for real when
# it is missing (Chromium and ChromeDriver for the dashboard, schemathesis for API fuzzing), runs
# every Rust test on release builds, then fuzzes the HTTP API from its OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {
    local started=$SECONDS
    echo "== $*"
    "$@"
    echo "== $* took $((SECONDS - started)) s"
}
step bash scripts/install-test-deps.sh
step cargo test --release --locked
step env FUZZ_EXAMPLES="${FUZZ_EXAMPLES:-10}" bash scripts/fuzz-api.sh
