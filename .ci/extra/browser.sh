#!/usr/bin/env bash
# The task page and the hosted sign-up form in a real browser
# (tests/browser/task_page.sh, tests/browser/signup_form.sh): headless
# Chromium at phone size records a call outcome, and signs someone up and
# confirms it, end to end. Installs
# Debian's chromium and chromium-driver when they are missing (CI starts on
# a machine without them); a failed install fails CI, it is not a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."

have_browser() {
    { command -v chromium || command -v chromium-browser || command -v google-chrome; } >/dev/null 2>&1 &&
        command -v chromedriver >/dev/null 2>&1
}
if ! have_browser; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "browser: installing chromium and chromium-driver"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null ||
        { "${sudo[@]}" apt-get update -q >/dev/null &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; } ||
        { echo "browser: cannot install chromium and chromium-driver with apt-get" >&2; exit 1; }
fi
bash tests/browser/task_page.sh
exec bash tests/browser/signup_form.sh
