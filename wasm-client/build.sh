#!/usr/bin/env bash
# Builds the `s3-direct` npm package into wasm-client/pkg/ (or the directory given as the only
# argument): the page's wasm module, its ES-module JS glue and TypeScript types (wasm-bindgen
# --target web), the checksum worker's own module and script, and a package.json.
#
# Needs the wasm32-unknown-unknown Rust target and the wasm-bindgen CLI at the exact version of the
# wasm-bindgen crate in Cargo.lock (the project's setup scripts install both). Runs from any
# directory; honours CARGO_TARGET_DIR and the workspace's cargo config.
set -euo pipefail

crate_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$crate_dir/.." && pwd)"
out_dir="${1:-$crate_dir/pkg}"
[[ "$out_dir" == /* ]] || out_dir="$PWD/$out_dir"
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

# Where cargo puts it: CARGO_TARGET_DIR, a config's build.target-dir, or the workspace's target/.
target_dir="$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

rm -rf "$out_dir"
# Two modules from the one crate (the profiles are in Cargo.toml): the page's, built for size
# without the hashers, and the checksum worker's, the hashers alone (`--features worker`) at full
# speed. The name section (function names for stack traces) is over a quarter of a module;
# panics still reach the console with their message.
module() { # out_name profile extra_args...
  local name="$1" profile="$2"
  shift 2
  cargo build --profile "$profile" --target wasm32-unknown-unknown -p s3-direct-wasm \
    --no-default-features "$@"
  wasm-bindgen --target web --out-dir "$out_dir" --out-name "$name" \
    --remove-name-section --remove-producers-section "${bindgen_args[@]}" \
    "$target_dir/wasm32-unknown-unknown/$profile/s3_direct.wasm"
  strip_doc_comments "$out_dir/$name.js"
}
# The glue repeats every exported item's doc comment, which the TypeScript types (the .d.ts)
# carry for editors: 1.4 KB of the page's gzipped weight. Drops each `/** ... */` block that
# stands on lines of its own, as wasm-bindgen writes them.
strip_doc_comments() { # file.js
  awk '/^[ \t]*\/\*\*/ { doc = 1 } !doc { print } doc && /\*\/[ \t]*$/ { doc = 0 }' "$1" >"$1.tmp"
  mv "$1.tmp" "$1"
}
bindgen_args=()
module s3_direct wasm
# The worker's module is internal: no TypeScript types.
bindgen_args=(--no-typescript)
module s3_direct_checksum wasm-worker --features worker

pkgid="$(cargo pkgid -p s3-direct-wasm)"
version="${pkgid##*[#@]}"
cp "$crate_dir/README.md" "$out_dir/README.md"
# Hand-written JS that ships with the generated glue (the <s3-direct-upload> widget, its types and
# the folder module it imports on the first folder, the checksum worker's script, the stream part
# store and the stream spool with its worker).
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
    "./spool": {
      "types": "./spool.d.ts",
      "default": "./spool.js"
    },
    "./s3_direct_bg.wasm": "./s3_direct_bg.wasm",
    "./package.json": "./package.json"
  },
  "files": [
    "s3_direct.js",
    "s3_direct.d.ts",
    "s3_direct_bg.wasm",
    "s3_direct_bg.wasm.d.ts",
    "s3_direct_checksum.js",
    "s3_direct_checksum_bg.wasm",
    "checksum-worker.js",
    "part-store.js",
    "snippets/",
    "widget.js",
    "widget.d.ts",
    "widget-folders.js",
    "spool.js",
    "spool.d.ts",
    "spool-worker.js",
    "README.md"
  ]
}
JSON

echo "built $out_dir (s3-direct $version, $(wc -c <"$out_dir/s3_direct_bg.wasm") byte module)"
