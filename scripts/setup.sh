#!/usr/bin/env bash
# Installs what s3-direct needs on a fresh machine, skipping whatever is already there.
#
#   scripts/setup.sh demo   the Rust wasm target and wasm-bindgen-cli (to build the server and client)
#   scripts/setup.sh test   the above, plus the three browser engines from Debian (chromium +
#                           chromium-driver, firefox-esr, webkit2gtk-driver with the MiniBrowser of
#                           libwebkit2gtk-4.1, and xvfb for it), ffmpeg, Ceph radosgw, Garage (built once
#                           with cargo into ~/.cargo/bin, then reused), the test suite's npm
#                           packages, and a Python venv (tests/.venv) with the receipt verification
#                           example's packages
#
# Only the package registries are reachable from the machines this runs on, so nothing here
# downloads a prebuilt binary or a browser: tools are built with cargo or come from Debian.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
what=${1:-demo}

log() { printf '[setup] %s\n' "$*" >&2; }

# The CLI must match the wasm-bindgen crate version exactly; Cargo.lock is the source of truth.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$root/Cargo.lock"
}

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ $apt_updated -eq 0 ]; then
    log "apt-get update"
    $sudo apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_rust() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
  local want have
  want=$(wasm_bindgen_version)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    # Exact version, but not --locked: wasm-bindgen-cli 0.2.130's own lock file names a
    # webpki-roots release the registry no longer has, so a locked install cannot resolve. Every
    # other tool built from source is installed --locked (Garage: tests/stores/garage.sh).
    log "cargo install wasm-bindgen-cli --version $want (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$want" --quiet
  fi
}

setup_test() {
  # WebKitWebDriver drives the MiniBrowser that libwebkit2gtk-4.1-0 installs; WebKitGTK has no
  # headless mode, so the tests give it an Xvfb display (tests/lib/engines.mjs).
  # ffmpeg: ffprobe and ffmpeg check that recordings stored by e2e/recording.test.mjs play.
  apt_install chromium chromium-driver firefox-esr webkit2gtk-driver xvfb radosgw ceph-mon ceph-osd ffmpeg
  # A ~20 minute release build on 2 cores the first time; skipped while `garage` is on PATH.
  "$root/tests/stores/garage.sh" install
  if [ ! -d "$root/tests/node_modules" ] || [ "$root/tests/package-lock.json" -nt "$root/tests/node_modules/.package-lock.json" ]; then
    log "npm ci (tests)"
    (cd "$root/tests" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  # The Vite example the browser tests build (Vite, React, TypeScript); the tests install the
  # packed s3-direct package into it themselves.
  if [ ! -d "$root/web/spa/node_modules" ] || [ "$root/web/spa/package-lock.json" -nt "$root/web/spa/node_modules/.package-lock.json" ]; then
    log "npm ci (web/spa)"
    (cd "$root/web/spa" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# The Python receipt verification example (examples/verify-receipt/verify.py) runs in tests/.venv,
# with PyJWT and cryptography at the exact, hashed versions of its requirements file.
setup_python() {
  local venv="$root/tests/.venv" req="$root/examples/verify-receipt/requirements.txt"
  # Debian's python3 keeps venv's pip bootstrap in python3-venv.
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  if [ ! -x "$venv/bin/python" ] || [ "$req" -nt "$venv/.installed" ]; then
    log "python3 -m venv tests/.venv; pip install -r examples/verify-receipt/requirements.txt"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$req"
    touch "$venv/.installed"
  fi
}

case "$what" in
  demo) setup_rust ;;
  test) setup_rust; setup_test; setup_python ;;
  *) echo "usage: scripts/setup.sh demo|test" >&2; exit 2 ;;
esac
