#!/usr/bin/env bash
# Builds the `s3-direct` npm package into wasm-client/pkg/: the release wasm module, its ES-module
# JS glue and TypeScript types (wasm-bindgen --target web), and a package.json.
#
# Needs the wasm32-unknown-unknown Rust target and the wasm-bindgen CLI at the exact version of the
# wasm-bindgen crate in Cargo.lock (the project's setup scripts install both). Runs from any
# directory; honours CARGO_TARGET_DIR and the workspace's cargo config.
set -euo pipefail

crate_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$crate_dir/.." && pwd)"
out_dir="$crate_dir/pkg"
# Cargo reads a relative CARGO_TARGET_DIR against its working directory; keep the caller's meaning.
if [[ -n "${CARGO_TARGET_DIR:-}" && "$CARGO_TARGET_DIR" != /* ]]; then
  export CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
fi
cd "$root"

# The CLI must match the crate exactly, or the generated glue does not fit the module.
want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if ! command -v wasm-bindgen >/dev/null; then
  echo "build.sh: wasm-bindgen not found; install it with: cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
have="$(wasm-bindgen --version | awk '{ print $2 }')"
if [[ "$have" != "$want" ]]; then
  echo "build.sh: wasm-bindgen CLI is $have but Cargo.lock has wasm-bindgen $want;" \
    "install the match with: cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

cargo build --release --target wasm32-unknown-unknown -p s3-direct-wasm

# Where cargo put it: CARGO_TARGET_DIR, a config's build.target-dir, or the workspace's target/.
target_dir="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
wasm="$target_dir/wasm32-unknown-unknown/release/s3_direct.wasm"

rm -rf "$out_dir"
# The name section (function names for stack traces) is over a quarter of the module; panics still
# reach the console with their message.
wasm-bindgen --target web --out-dir "$out_dir" --out-name s3_direct \
  --remove-name-section --remove-producers-section "$wasm"

pkgid="$(cargo pkgid -p s3-direct-wasm)"
version="${pkgid##*[#@]}"
cp "$crate_dir/README.md" "$out_dir/README.md"
# Hand-written JS that ships with the generated glue (the <s3-direct-upload> widget and its types).
if compgen -G "$crate_dir/js/*" >/dev/null; then
  cp "$crate_dir"/js/* "$out_dir/"
fi
cat >"$out_dir/package.json" <<JSON
{
  "name": "s3-direct",
  "version": "$version",
  "description": "Browser-direct parallel multipart uploads to S3-compatible storage, through presigned URLs from an s3-direct signing server",
  "license": "Apache-2.0",
  "type": "module",
  "main": "s3_direct.js",
  "module": "s3_direct.js",
  "types": "s3_direct.d.ts",
  "exports": {
    ".": {
      "types": "./s3_direct.d.ts",
      "default": "./s3_direct.js"
    },
    "./widget": {
      "types": "./widget.d.ts",
      "default": "./widget.js"
    },
    "./s3_direct_bg.wasm": "./s3_direct_bg.wasm",
    "./package.json": "./package.json"
  },
  "files": [
    "s3_direct.js",
    "s3_direct.d.ts",
    "s3_direct_bg.wasm",
    "s3_direct_bg.wasm.d.ts",
    "snippets/",
    "widget.js",
    "widget.d.ts",
    "README.md"
  ]
}
JSON

echo "built $out_dir (s3-direct $version, $(wc -c <"$out_dir/s3_direct_bg.wasm") byte module)"
