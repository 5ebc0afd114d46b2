#!/usr/bin/env bash
# Runs the s3-direct benchmark suite and writes benches/results/latest.md and latest.json:
#   browser upload throughput (s3-direct, Uppy 5 + Companion, Uppy on s3-direct's routes, the
#   browser and store ceilings) on the embedded store and a single-node Garage; signing load
#   (s3-direct and Companion); checksum throughput in WASM (with and without SIMD) and WebCrypto;
#   what part checksums cost on throttled links; uploads over links with latency (s3-direct, Uppy 5
#   and 6, the ceiling); the browser's peak memory on a big upload; throughput and peak memory of
#   s3-direct's page and the ceiling page in Chromium, Firefox and WebKit; per engine, the time
#   from asking for the client's code to a ready uploader, cold and from the HTTP cache, and the
#   bytes moved, for s3-direct and Uppy 5's bundle; per engine, how soon a stalled part is
#   re-sent and that clean uploads on slow links re-send nothing. See BENCHMARKS.md.
#
#   scripts/bench.sh           the full suite (about an hour on 2 cores; writes up to 4 GiB
#                              of temporary files, removed at exit)
#   scripts/bench.sh --quick   a short run: one 256 MiB run per client, 3 s of signing load, 1 GiB
#                              for the memory bound
#   scripts/bench.sh --engine firefox   only the engine section, for one engine (chromium, firefox
#                              or webkit; S3_DIRECT_BENCH_SIZES and _RUNS apply)
#   S3_DIRECT_BENCH_ONLY=ready scripts/bench.sh   only the time-to-ready section (about 9 minutes
#                              for the three engines; S3_DIRECT_BENCH_ENGINES picks them)
#   S3_DIRECT_BENCH_ONLY=stalls scripts/bench.sh  only the stall section (about 12 minutes for
#                              the three engines)
#
# Installs what it needs first (like scripts/test.sh: Chromium, Garage, the wasm32 target and
# wasm-bindgen CLI through scripts/setup.sh; the suite's npm packages in benches/). Honours
# CARGO_TARGET_DIR. Numbers never fail it: it exits non-zero only if the harness cannot run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

args=()
while (($#)); do
  case "$1" in
    --quick) args+=(--quick) ;;
    --engine)
      case "${2:-}" in
        chromium | firefox | webkit) export S3_DIRECT_BENCH_ONLY=engines S3_DIRECT_BENCH_ENGINES="$2"; shift ;;
        *) echo "bench.sh: --engine takes chromium, firefox or webkit" >&2; exit 2 ;;
      esac ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*" >&2; }

if [[ -z "${S3_DIRECT_BENCH_SKIP_SETUP:-}" ]]; then
  step "installing what the benchmarks need"
  scripts/setup.sh test
fi

target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target_dir" == /* ]] || target_dir="$root/$target_dir"
build="$root/benches/.build"
mkdir -p "$build"

step "building the release server and the benchmark tools"
# Two builds, not one: built together, cargo would unify their dependencies' features and compile
# a server that differs from `cargo build --release -p s3-direct-server`.
CARGO_TARGET_DIR="$target_dir" cargo build --release --quiet -p s3-direct-server
CARGO_TARGET_DIR="$target_dir" cargo build --release --quiet -p s3-direct-bench

# The WASM package, built here (not wasm-client/pkg, which others may be rebuilding) by
# wasm-client/build.sh; and the same with SIMD, in its own target dir so the two builds do not
# invalidate each other.
want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')"
if [[ "$have" != "$want" ]]; then
  echo "bench.sh: wasm-bindgen CLI is '${have:-missing}' but Cargo.lock has $want" >&2
  exit 1
fi
build_pkg() { # out_dir target_dir extra_rustflags [source_dir]
  local out="$1" tdir="$2" flags="$3" src="${4:-$root}"
  rm -rf "$out"
  (cd "$src" && CARGO_TARGET_DIR="$tdir" RUSTFLAGS="${RUSTFLAGS:-} $flags" \
    wasm-client/build.sh "$out" >/dev/null)
  # An older revision's build.sh takes no output directory: it built into its own tree.
  [[ -f "$out/s3_direct.js" ]] || cp -r "$src/wasm-client/pkg" "$out"
}
step "building the WASM client package (plain and +simd128)"
build_pkg "$build/pkg" "$target_dir" ""
rm -rf "$build/web" && mkdir -p "$build/web"
build_pkg "$build/web/pkg-simd" "$target_dir/bench-simd" "-C target-feature=+simd128"
# Before/after comparisons of the client: S3_DIRECT_BENCH_BASELINE_REV names a revision whose
# client is built too (from a copy of that revision's tree) and measured beside this one.
if [[ -n "${S3_DIRECT_BENCH_BASELINE_REV:-}" ]]; then
  step "building the baseline WASM client package ($S3_DIRECT_BENCH_BASELINE_REV)"
  baseline_src="$build/baseline-src"
  rm -rf "$baseline_src" && mkdir -p "$baseline_src"
  git archive "$S3_DIRECT_BENCH_BASELINE_REV" | tar -x -C "$baseline_src"
  build_pkg "$build/web/pkg-baseline" "$target_dir/bench-baseline" "" "$baseline_src"
  S3_DIRECT_BENCH_BASELINE_PKG_REV="$(git rev-parse --short=12 "$S3_DIRECT_BENCH_BASELINE_REV")"
  export S3_DIRECT_BENCH_BASELINE_PKG_REV
fi

step "installing the suite's npm packages and bundling the Uppy page"
if [[ ! -d benches/node_modules ]] || [[ benches/package-lock.json -nt benches/node_modules/.package-lock.json ]]; then
  (cd benches && npm ci --no-audit --no-fund --loglevel=error)
fi
# The engine section drives Firefox and WebKit through the test suite's engine harness and packages.
if [[ ! -d tests/node_modules ]] || [[ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]]; then
  (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi
cp benches/pages/*.html benches/pages/*.js "$build/web/"
rm -f "$build/web/uppy-entry.js" "$build/web/uppy6-entry.js"
benches/node_modules/.bin/esbuild benches/pages/uppy-entry.js --bundle --minify \
  --format=iife --target=chrome120 --log-level=warning --outfile="$build/web/uppy.js"
# Uppy 6 sits beside Uppy 5 under npm aliases; the aliases map its imports (subpaths included).
(cd benches && node_modules/.bin/esbuild pages/uppy6-entry.js --bundle --minify \
  --alias:@uppy/core=uppy6-core --alias:@uppy/aws-s3=uppy6-aws-s3 \
  --format=iife --target=chrome120 --log-level=warning --outfile="$build/web/uppy6.js")

export PATH="$HOME/.cargo/bin:$PATH"
export S3_DIRECT_BENCH_BIN="$target_dir/release/s3-direct"
export S3_DIRECT_BENCH_TOOL="$target_dir/release/s3-direct-bench"
export S3_DIRECT_BENCH_WEB="$build/web"
export S3_DIRECT_BENCH_PKG="$build/pkg"
S3_DIRECT_BENCH_PKG_REV="$(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- wasm-client protocol || echo ' (with uncommitted changes)')"
export S3_DIRECT_BENCH_PKG_REV

step "running the benchmarks${args[*]:+ (${args[*]})}"
node benches/run.mjs "${args[@]}"
