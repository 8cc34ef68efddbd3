#!/usr/bin/env bash
# The Debian package under a real systemd, run by .ci/extra/package.sh when
# OUTREACH_CI_NSPAWN=1 (it takes minutes: see docs/operations.md), with the
# package it built as $1: boots a minimal Debian bookworm with
# systemd-nspawn, installs the package (and its dependencies) with apt, and
# checks inside (.ci/nspawn/checks.sh): active through READY=1, /healthz,
# `systemctl reload`, file modes 0700/0600, log levels in the journal, the
# watchdog restarting a daemon whose main loop hangs, an upgrade to a newer
# package, and `systemctl stop` well inside its timeout.
#
# The root file system comes from `debootstrap --variant=minbase`, made once
# and kept under target/nspawn/rootfs (delete it to start afresh); each run
# boots a fresh copy of it. Needs root. Installs debootstrap and
# systemd-container if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ -f "${1:-}" ] || { echo "usage: $0 PACKAGE.deb" >&2; exit 2; }
work=target/nspawn
rm -rf "$work/debs"
mkdir -p "$work/debs"
# (A copy: cargo-deb deletes other versions from its output folder.)
cp "$1" "$work/debs/"
deb=$(ls "$work"/debs/outreach_*.deb)
# The same package one Debian revision later, to check an upgrade (packing
# only: the binary is the one already built).
cp "$(OUTREACH_DEB_REVISION=99 bash .ci/lib/deb.sh | tail -n1)" "$work/debs/upgrade.deb"
upgrade="$work/debs/upgrade.deb"

if [ ! -x "$work/rootfs/usr/bin/systemctl" ]; then
    echo "nspawn: debootstrap bookworm (once; kept in $work/rootfs)"
    rm -rf "$work/rootfs.partial"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,sqlite3 \
        bookworm "$work/rootfs.partial" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || {
        tail -n 20 "$work/debootstrap.log"
        exit 1
    }
    mv "$work/rootfs.partial" "$work/rootfs"
fi

machine="$work/machine"
rm -rf "$machine"
cp -a "$work/rootfs" "$machine"
cp "$deb" "$machine/root/outreach.deb"
cp "$upgrade" "$machine/root/outreach-upgrade.deb"
mkdir -p "$machine/root/ci"
cp .ci/nspawn/checks.sh "$machine/root/ci/checks.sh"
cp .ci/nspawn/outreach-ci.service "$machine/etc/systemd/system/outreach-ci.service"
ln -sf /etc/systemd/system/outreach-ci.service "$machine/etc/systemd/system/multi-user.target.wants/outreach-ci.service"

nspawn=(systemd-nspawn --quiet --register=no --keep-unit --resolv-conf=replace-host -D "$machine")
echo "nspawn: apt-get install ./outreach.deb (not booted: the service starts at boot)"
"${nspawn[@]}" --pipe env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends /root/outreach.deb >"$work/install.log" 2>&1 || {
    cat "$work/install.log"
    exit 1
}

echo "nspawn: booting systemd"
status=0
timeout 600 "${nspawn[@]}" --boot --console=pipe >"$work/boot.log" 2>&1 </dev/null || status=$?
if [ ! -s "$machine/root/ci/result" ]; then
    echo "FAIL the checks inside the container did not finish (systemd-nspawn exit $status); its console:"
    tail -n 40 "$work/boot.log" | sed 's/^/    /'
    exit 1
fi
cat "$machine/root/ci/result"
if grep -q '^FAIL' "$machine/root/ci/result"; then
    echo "    (the container's journal: $machine/var/log/journal, its console: $work/boot.log)"
    exit 1
fi
rm -rf "$machine"
