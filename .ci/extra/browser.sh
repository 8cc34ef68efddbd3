#!/usr/bin/env bash
# The task page in a real browser (tests/browser/task_page.sh): headless
# Chromium at phone size records a call outcome end to end. Runs only where
# Chromium and chromedriver are installed (Debian: apt-get install chromium
# chromium-driver); elsewhere it says so and passes.
set -euo pipefail
cd "$(dirname "$0")/../.."

chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chrome" ] || ! command -v chromedriver >/dev/null 2>&1; then
    echo "browser: skipped: chromium not installed (apt-get install chromium chromium-driver)"
    exit 0
fi
exec bash tests/browser/task_page.sh
