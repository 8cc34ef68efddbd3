#!/usr/bin/env bash
# Builds the Debian package for CI's checks (.ci/extra/package.sh) without
# compiling outreach again: it packs the binary the test run already built
# (`cargo test` builds target/debug/outreach; `cargo test --no-run` below is
# then a no-op, and builds it only when this runs on its own). Not `cargo
# build`: without the dev-dependencies some crates get other features, so
# it would compile everything a second time.
# Packing, file list, maintainer scripts and unit are the same as for a
# release package (`cargo deb`, see docs/operations.md); only the binary is
# the unoptimised one, which is what the tests ran against.
#
# cargo-deb is installed once (pinned, --locked) without its default
# features: those compile liblzma and an ELF reader in C and Rust; without
# them cargo-deb calls the system's `xz` and `objcopy`, which Debian has.
# And unoptimised (--debug): that compiles in under a minute instead of
# several, and packs as fast, since the work is objcopy's and xz's.
#
# Prints the path of the .deb on its last line. OUTREACH_DEB_REVISION sets a
# Debian revision other than the default (for an upgrade package).
set -euo pipefail
cd "$(dirname "$0")/../.."

CARGO_DEB_VERSION=3.8.0

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "deb: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" --no-default-features --debug >&2
fi
# dpkg-deb, objcopy (binutils) and xz are what cargo-deb calls.
missing=()
command -v dpkg-deb >/dev/null || missing+=(dpkg)
command -v objcopy >/dev/null || missing+=(binutils)
command -v xz >/dev/null || missing+=(xz-utils)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
cargo test --no-run --quiet >&2 2>/dev/null || cargo test --no-run >&2
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out="$target/debian/ci"
mkdir -p "$out"
revision=()
[ -n "${OUTREACH_DEB_REVISION:-}" ] && revision=(--deb-revision "$OUTREACH_DEB_REVISION")
deb=$(cargo deb --no-build --profile dev --fast --quiet "${revision[@]}" --output "$out")
# cargo-deb prints the path it wrote; fall back to the newest file.
[ -f "$deb" ] || deb=$(ls -t "$out"/outreach_*.deb | head -n1)
echo "$deb"
