#!/usr/bin/env bash
# Runs every test of s3-direct, installing what the tests need first:
#   formatting and lints (host and wasm32), Rust unit and integration tests (protocol, server against
#   the embedded store, the upload engine), then the whole-system tests in headless Chromium against
#   the embedded store and a Ceph radosgw started on loopback.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*" >&2; }

step "installing what the tests need"
scripts/setup.sh test

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host and wasm32)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p s3-direct-wasm --target wasm32-unknown-unknown --quiet -- -D warnings

step "cargo test"
cargo test --workspace --quiet

step "building the server and the browser client for the browser tests"
cargo build --quiet -p s3-direct-server
wasm-client/build.sh

step "browser end-to-end tests"
cd tests
S3_DIRECT_BIN="$root/target/debug/s3-direct" node --test --test-concurrency=1 e2e/
