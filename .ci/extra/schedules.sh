#!/usr/bin/env bash
# Schedule occurrences against an independent cron implementation: Python's
# croniter, over random expressions, zones and years around every DST change
# (tests/schedules/compare_croniter.py). Installs croniter when missing; a
# failed install fails CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! python3 -c 'import croniter' 2>/dev/null; then
    echo "schedules: installing croniter"
    python3 -m pip install --quiet --disable-pip-version-check 'croniter>=6,<8' ||
        { echo "schedules: cannot install croniter with pip" >&2; exit 1; }
fi
cargo build --quiet --example occurrences
# Wherever cargo builds (CARGO_TARGET_DIR or the workspace's own target/).
target=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
exec python3 tests/schedules/compare_croniter.py "$target/debug/examples/occurrences" --cases 6000
