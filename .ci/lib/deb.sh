#!/usr/bin/env bash
# Builds the Debian package once for the scripts that need it
# (.ci/extra/package.sh, .ci/extra/nspawn.sh): installs the pinned
# cargo-deb if missing, then `cargo deb`, which reuses an up-to-date release
# build. Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_DEB_VERSION=3.8.0

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "deb: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi
# dpkg-deb and strip/objcopy (binutils) are what cargo-deb calls.
missing=()
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v objcopy >/dev/null || missing+=(binutils)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
cargo deb --quiet >&2
ls -t target/debian/outreach_*.deb | head -n1
