#!/usr/bin/env bash
# Quick start: installs what is missing, builds the server and the browser client, and starts
# s3-direct with zero configuration (an embedded S3-compatible store on loopback, data in ./data).
# Extra arguments go to the server, e.g. `scripts/demo.sh --listen 127.0.0.1:9000`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/setup.sh demo
echo "[demo] building the server and the browser client" >&2
cargo build --release --quiet -p s3-direct-server
wasm-client/build.sh
exec target/release/s3-direct "$@"
