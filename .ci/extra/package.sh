#!/usr/bin/env bash
# The Debian package: built once with cargo-deb from the binary the test run
# built (.ci/lib/deb.sh), and checked:
#   1. its files (`dpkg-deb --contents`): the binary, outreach-admin, the
#      unit, the sysusers.d and tmpfiles.d entries, the example config and
#      the templates under /etc/outreach, and that those are conffiles;
#   2. its control data: the dependencies its unit and scripts need;
#   3. `lintian`: no errors;
#   4. with OUTREACH_CI_NSPAWN=1 only: the same package installed and run
#      under a real systemd (.ci/lib/nspawn.sh; needs root, takes minutes).
# Installs lintian if missing. Fails on the first check that does not hold.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v lintian >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends lintian >/dev/null
fi

started=$SECONDS
deb=$(bash .ci/lib/deb.sh | tail -n1)
echo "package: $deb ($(du -h "$deb" | cut -f1), $((SECONDS - started)) s to build)"
failed=0
fail() { echo "FAIL $*"; failed=1; }

contents=$(dpkg-deb --contents "$deb" | awk '{ print $NF }' | sed 's|^\./|/|')
for path in \
    /usr/bin/outreach \
    /usr/sbin/outreach-admin \
    /usr/lib/systemd/system/outreach.service \
    /usr/lib/sysusers.d/outreach.conf \
    /usr/lib/tmpfiles.d/outreach.conf \
    /etc/outreach/outreach.toml \
    /etc/outreach/conf.d/00-package.toml \
    /etc/outreach/templates/_layout.html \
    /etc/outreach/templates/status_update.de.md \
    /etc/outreach/templates/checkin.en.md \
    /usr/share/doc/outreach/copyright \
    /usr/share/doc/outreach/operations.md; do
    grep -qx "$path" <<<"$contents" || fail "dpkg-deb --contents: $path missing"
done
[ "$failed" -eq 0 ] && echo "ok   dpkg-deb --contents: binary, unit, sysusers/tmpfiles entries, config, templates"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --control "$deb" "$tmp/control"
for conffile in /etc/outreach/outreach.toml /etc/outreach/conf.d/00-package.toml /etc/outreach/templates/status_update.de.md; do
    grep -qx "$conffile" "$tmp/control/conffiles" || fail "$conffile is not a conffile"
done
depends=$(dpkg-deb --field "$deb" Depends)
for need in libc6 systemd; do
    grep -q "$need" <<<"$depends" || fail "Depends: lacks $need ($depends)"
done
grep -q 'systemd-sysusers' "$tmp/control/postinst" || fail "postinst does not create the user"
echo "ok   control: conffiles, Depends: $depends"

lintian_output=$(lintian --fail-on error --tag-display-limit 0 "$deb" 2>&1) || {
    fail "lintian found errors:"
    printf '%s\n' "$lintian_output" | sed 's/^/    /'
}
if [ "$failed" -eq 0 ]; then
    echo "ok   lintian: no errors ($(grep -c '^W:' <<<"$lintian_output" || true) warnings)"
    printf '%s\n' "$lintian_output" | grep '^W:' | sed 's/^/    /' || true
fi
[ "$failed" -eq 0 ] || exit 1

if [ "${OUTREACH_CI_NSPAWN:-0}" = 1 ]; then
    bash .ci/lib/nspawn.sh "$deb"
else
    echo "skip the package under systemd-nspawn (set OUTREACH_CI_NSPAWN=1 to run it; see docs/operations.md)"
fi

