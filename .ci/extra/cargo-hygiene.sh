#!/usr/bin/env bash
# Cargo hygiene: the declared `rust-version` really builds the crate, and
# `cargo deny` holds the dependency policy in deny.toml (permissive licences,
# rustls only, crates.io only). Installs the toolchain and cargo-deny when
# missing; a failed install fails CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "hygiene: Cargo.toml declares no rust-version" >&2; exit 1; }
# A bare "1.95" names the newest 1.95.x to rustup; the declared minimum is x.y.0.
[[ "$msrv" =~ ^[0-9]+\.[0-9]+$ ]] && msrv="$msrv.0"
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    echo "hygiene: installing Rust $msrv (the declared rust-version)"
    rustup toolchain install "$msrv" --profile minimal ||
        { echo "hygiene: cannot install Rust $msrv (rustup needs its download server)" >&2; exit 1; }
fi
echo "hygiene: cargo +$msrv check --all-targets --locked"
cargo "+$msrv" check --quiet --all-targets --locked

if ! cargo deny --version >/dev/null 2>&1; then
    echo "hygiene: installing cargo-deny"
    cargo install --quiet --locked cargo-deny ||
        { echo "hygiene: cannot install cargo-deny" >&2; exit 1; }
fi
cargo deny --log-level error check licenses bans sources
