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

# Real stores for the Rust tests that need one (they skip when their variables are unset, so a
# plain `cargo test` stays store-independent; here they must run).
stores=$(mktemp -d "${TMPDIR:-/tmp}/s3-direct-stores.XXXXXX")
cleanup() { tests/stores/ceph.sh stop "$stores/ceph" >/dev/null 2>&1 || true; rm -rf "$stores"; }
trap cleanup EXIT

step "starting Ceph radosgw on loopback for the store tests"
mkdir -p "$stores/ceph"
CEPH_OWNER_PID=$$ tests/stores/ceph.sh start "$stores/ceph" >/dev/null
# shellcheck disable=SC1091
. "$stores/ceph/env"
export S3_DIRECT_TEST_CEPH_ENDPOINT=$CEPH_ENDPOINT S3_DIRECT_TEST_CEPH_ACCESS_KEY=$CEPH_ACCESS_KEY \
  S3_DIRECT_TEST_CEPH_SECRET_KEY=$CEPH_SECRET_KEY S3_DIRECT_TEST_CEPH_REGION=$CEPH_REGION

step "cargo test"
cargo test --workspace --quiet
tests/stores/ceph.sh stop "$stores/ceph" >/dev/null

step "building the server and the browser client for the browser tests"
cargo build --quiet -p s3-direct-server
wasm-client/build.sh

step "browser end-to-end tests"
cd tests
S3_DIRECT_BIN="$root/target/debug/s3-direct" node --test --test-concurrency=1 e2e/
