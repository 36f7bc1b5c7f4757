#!/usr/bin/env bash
# Installs what the tests need beyond cargo, and says what it did; running it again changes
# nothing once all is there.
#
#   scripts/install-test-deps.sh
#
# - Chromium and ChromeDriver (Debian's chromium and chromium-driver: /usr/bin/chromium,
#   /usr/bin/chromedriver) for tests/dashboard_browser.rs;
# - schemathesis (`st`), from PyPI, for checking the server against its OpenAPI document.
#
# apt-get runs as root, through sudo when this script is not run as root.
set -euo pipefail

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "install-test-deps: not root and no sudo: run this script as root" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

did=0
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "install-test-deps: installing chromium and chromium-driver with apt-get"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
    did=1
fi
echo "install-test-deps: $(/usr/bin/chromium --version 2>/dev/null), $(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"

if ! command -v schemathesis >/dev/null && ! command -v st >/dev/null; then
    echo "install-test-deps: installing schemathesis with pip"
    python3 -m pip install --quiet schemathesis
    # pyenv makes the new command visible only after a rehash.
    command -v pyenv >/dev/null && pyenv rehash || true
    hash -r
    did=1
fi
if command -v schemathesis >/dev/null; then
    echo "install-test-deps: $(schemathesis --version 2>/dev/null | head -1)"
elif command -v st >/dev/null; then
    echo "install-test-deps: $(st --version 2>/dev/null | head -1)"
elif python3 -m schemathesis.cli --version >/dev/null 2>&1; then
    echo "install-test-deps: $(python3 -m schemathesis.cli --version | head -1) (as python3 -m schemathesis.cli)"
else
    echo "install-test-deps: schemathesis was installed but cannot be run" >&2
    exit 1
fi

if [ "$did" -eq 0 ]; then
    echo "install-test-deps: everything was already installed; nothing done"
fi
