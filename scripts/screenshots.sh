#!/usr/bin/env bash
# Screenshots of every dashboard page at 1280 px and 768 px, taken by the browser test
# (tests/dashboard_browser.rs) as it checks them: a full-page PNG per page and width.
#
#   scripts/screenshots.sh [DIR]            # default: ./screenshots
#
# Needs Chromium and chromedriver: scripts/install-test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-./screenshots}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
SCREENSHOTS_DIR="$dir" cargo test --release --test dashboard_browser -- --nocapture
echo "screenshots: $(find "$dir" -maxdepth 1 -name '*.png' | wc -l) PNG files in $dir"
