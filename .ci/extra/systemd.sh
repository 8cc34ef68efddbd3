#!/usr/bin/env bash
# Checks systemd/outreach.service:
#   1. `systemd-analyze verify` prints nothing. verify exits 0 on most
#      problems (unknown keys, bad values) and only prints them, so any output
#      fails this check. ExecStart's binary must exist for verify, and CI builds
#      no package, so a temporary copy of the unit whose ExecStart runs
#      /bin/true (same arguments) is verified instead.
#   2. `systemd-analyze security --offline=true` rates it 1.5 or lower.
# Also: systemd/outreach-admin parses (sh -n; shellcheck when installed).
# Without systemd-analyze the whole check is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."

unit=systemd/outreach.service
max_exposure=1.5

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd: systemd-analyze not found; skipping the unit checks (apt-get install systemd)"
    exit 0
fi
echo "systemd: $(systemd-analyze --version | head -n1)"

failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. verify
true_bin=/bin/true
[ -x "$true_bin" ] || true_bin=/usr/bin/true
sed "s|^ExecStart=/usr/bin/outreach |ExecStart=$true_bin |" "$unit" >"$tmp/outreach.service"
if ! grep -q "^ExecStart=$true_bin --config " "$tmp/outreach.service"; then
    echo "FAIL $unit: expected a line 'ExecStart=/usr/bin/outreach --config …' to substitute"
    failed=1
fi
verify_status=0
verify_output=$(cd "$tmp" && systemd-analyze verify --man=no ./outreach.service 2>&1) || verify_status=$?
if [ "$verify_status" -ne 0 ] || [ -n "$verify_output" ]; then
    echo "FAIL systemd-analyze verify $unit (exit $verify_status, ExecStart=$true_bin):"
    # Same line numbers as the real file: only ExecStart's path differs.
    printf '%s\n' "$verify_output" | sed -e "s|$tmp/outreach.service|$unit|g" -e 's/^/    /'
    failed=1
else
    echo "ok   systemd-analyze verify: no warnings"
fi

# 2. security
if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    security_status=0
    security_output=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || security_status=$?
    score=$(printf '%s\n' "$security_output" |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' | tail -n1)
    if [ -z "$score" ]; then
        echo "FAIL systemd-analyze security $unit: no overall exposure level in its output (exit $security_status):"
        printf '%s\n' "$security_output" | sed 's/^/    /'
        failed=1
    elif awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
        echo "FAIL systemd-analyze security: exposure $score is above $max_exposure; the settings that cost most:"
        printf '%s\n' "$security_output" | grep '✗' |
            awk '{ print $NF "\t" $0 }' | sort -rn | cut -f2- | awk 'NR <= 15 { print "    " $0 }'
        failed=1
    else
        echo "ok   systemd-analyze security: exposure $score (at most $max_exposure)"
    fi
else
    echo "skip systemd-analyze security: this systemd has no --offline (needs systemd >= 250)"
fi

# The admin wrapper is shell; at least make sure it parses.
if sh -n systemd/outreach-admin; then
    if command -v shellcheck >/dev/null 2>&1; then
        if shellcheck -s sh systemd/outreach-admin; then
            echo "ok   systemd/outreach-admin: sh -n, shellcheck"
        else
            failed=1
        fi
    else
        echo "ok   systemd/outreach-admin: sh -n (shellcheck not installed)"
    fi
else
    echo "FAIL systemd/outreach-admin does not parse"
    failed=1
fi

exit "$failed"
