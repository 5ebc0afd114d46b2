#!/usr/bin/env bash
# Runs every test of s3-direct, installing what the tests need first:
#   formatting and lints (host and wasm32), Rust unit and integration tests (protocol, server against
#   the embedded store, the upload engine), then the whole-system tests in headless Chromium against
#   the embedded store and a Ceph radosgw started on loopback, and two server replicas behind a
#   round-robin balancer on a three-node Garage (e2e/scale.test.mjs starts its own cluster); the
#   core scenarios also run in Firefox ESR and WebKitGTK (e2e/engines*.test.mjs on the embedded
#   store and Garage, e2e/changed-file.test.mjs), and the page's weight is checked against its
#   budget (wasm-client/check-size.sh).
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
# plain `cargo test` stays store-independent; here they must run): a single-node and a three-node
# Garage, and Ceph radosgw, all on loopback and stopped on exit (or if this script dies).
stores=$(mktemp -d "${TMPDIR:-/tmp}/s3-direct-stores.XXXXXX")
stop_stores() {
  tests/stores/garage.sh stop "$stores/g1" >/dev/null 2>&1 || true
  tests/stores/garage.sh stop "$stores/g3" >/dev/null 2>&1 || true
  tests/stores/ceph.sh stop "$stores/ceph" >/dev/null 2>&1 || true
}
trap 'stop_stores; rm -rf "$stores"' EXIT
export GARAGE_OWNER_PID=$$ CEPH_OWNER_PID=$$

step "starting Garage (1 and 3 nodes) and Ceph radosgw for the store tests"
tests/stores/garage.sh start "$stores/g1" >/dev/null
tests/stores/garage.sh start "$stores/g3" --nodes 3 >/dev/null
tests/stores/ceph.sh start "$stores/ceph" >/dev/null
set -a
# shellcheck disable=SC1090
. <(sed 's/^GARAGE_/S3_DIRECT_TEST_GARAGE_/' "$stores/g1/env")
# shellcheck disable=SC1090
. <(sed 's/^GARAGE_/S3_DIRECT_TEST_GARAGE3_/' "$stores/g3/env")
# shellcheck disable=SC1090
. <(sed 's/^CEPH_/S3_DIRECT_TEST_CEPH_/' "$stores/ceph/env")
set +a

step "cargo test"
cargo test --workspace --quiet
stop_stores

step "building the server and the browser client for the browser tests"
# The Rust receipt verification example too: e2e/receipts.test.mjs runs it.
cargo build --quiet -p s3-direct-server --bins --example verify-receipt
wasm-client/build.sh

step "the package's TypeScript API (against wasm-client/api/s3_direct.d.ts), npm pack, its weight"
wasm-client/check-api.sh --no-build
wasm-client/check-pack.sh
wasm-client/check-size.sh

step "browser end-to-end tests"
# Every file in e2e/ runs. The Garage tests (e2e/scale.test.mjs) skip with a message only when
# `garage` is missing and CI is not "true"; setup above installed it and the store tests above
# already ran it, so here they run.
cd tests
S3_DIRECT_BIN="$root/target/debug/s3-direct" node --test --test-concurrency=1 e2e/
