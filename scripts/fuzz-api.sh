#!/usr/bin/env bash
# API fuzzing from the OpenAPI document: schemathesis against a real `serve` on a demo store,
# once with a writer's token (appends) and once with an auditor's (reads). Fails on any 5xx and
# on any response the document does not describe (status, content type, schema, headers).
#
#   scripts/fuzz-api.sh                # the short run CI makes
#   FUZZ_EXAMPLES=500 scripts/fuzz-api.sh   # a longer one
#
# Needs schemathesis (scripts/install-test-deps.sh installs it) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${FUZZ_EXAMPLES:-40}
bin=${PIPELINE_LEDGER_BIN:-target/release/pipeline-ledger}
[ -x "$bin" ] || cargo build --release --locked
if command -v schemathesis >/dev/null; then
    st=(schemathesis)
elif command -v st >/dev/null; then
    st=(st)
elif python3 -m schemathesis.cli --version >/dev/null 2>&1; then
    st=(python3 -m schemathesis.cli)
else
    echo "schemathesis is not installed: run scripts/install-test-deps.sh" >&2
    exit 1
fi
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
store="$work/ledger.db"
"$bin" --store "$store" demo --customers 60 --until 2026-06-30 >/dev/null
writer=$("$bin" --store "$store" token create --role writer --name fuzz-writer 2>/dev/null)
auditor=$("$bin" --store "$store" token create --role auditor --name fuzz-auditor 2>/dev/null)
"$bin" --store "$store" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/serve.out" 2>/dev/null && break
    sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$url" ] || { echo "serve did not start:"; cat "$work/serve.err"; exit 1; }
echo "fuzzing $url with $examples examples per operation and token"
status=0
for token in "$writer" "$auditor"; do
    SCHEMATHESIS_HOOKS=scripts.fuzz_hooks "${st[@]}" run "$url/v1/openapi.json" \
        --checks all \
        --exclude-checks positive_data_acceptance,ensure_resource_availability,use_after_free,ignored_auth \
        --max-examples "$examples" --seed 42 \
        --phases examples,coverage,fuzzing \
        --request-timeout 30 \
        --suppress-health-check all \
        --header "Authorization: Bearer $token" \
        --no-color || status=1
done
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server died during fuzzing:"; cat "$work/serve.err"; exit 1
fi
exit $status
