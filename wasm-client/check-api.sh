#!/usr/bin/env bash
# Checks the npm package's TypeScript API: the generated `pkg/s3_direct.d.ts` must equal the
# committed `api/s3_direct.d.ts` (so API changes are deliberate and reviewed), and it must
# typecheck with `api/usage.ts`, which uses every option and event (so a type that broke or
# loosened to `any` fails).
#
#   wasm-client/check-api.sh             build the package (build.sh), then check
#   wasm-client/check-api.sh --no-build  check the package already in wasm-client/pkg
#   wasm-client/check-api.sh --accept    build, then make the generated API the committed one
#
# The module's raw exports (`InitOutput`: wasm function names, some with hashes that change with
# any Rust change) are left out of the comparison; they are not API.
# Needs typescript from tests/ (`npm ci` in tests/).
set -euo pipefail

crate_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$crate_dir/.." && pwd)"
build=true
accept=false
for arg in "$@"; do
  case "$arg" in
    --no-build) build=false ;;
    --accept) accept=true ;;
    *) echo "check-api.sh: unknown argument $arg (use --no-build or --accept)" >&2; exit 2 ;;
  esac
done

if $build; then
  "$crate_dir/build.sh"
fi
generated="$crate_dir/pkg/s3_direct.d.ts"
committed="$crate_dir/api/s3_direct.d.ts"
if [[ ! -f "$generated" ]]; then
  echo "check-api.sh: $generated does not exist; build the package with wasm-client/build.sh" >&2
  exit 1
fi

# The public part of the generated types: everything but the body of `interface InitOutput`.
public_api() {
  awk '/^export interface InitOutput \{/ { print; skip = 1; next }
       skip && /^\}/ { skip = 0 }
       !skip' "$1"
}

if $accept; then
  public_api "$generated" >"$committed"
  echo "check-api.sh: accepted the generated API into wasm-client/api/s3_direct.d.ts; commit it" \
    "with the change that made it (and update wasm-client/README.md and api/usage.ts to match)"
else
  if ! diff -u --label committed/api/s3_direct.d.ts --label generated/pkg/s3_direct.d.ts \
    "$committed" <(public_api "$generated"); then
    cat >&2 <<MSG

check-api.sh: the package's TypeScript API changed (the diff above: - committed, + generated).
If the change is deliberate, accept it and commit the new wasm-client/api/s3_direct.d.ts with it:
    wasm-client/check-api.sh --no-build --accept
and update wasm-client/README.md and wasm-client/api/usage.ts to match. If it is not, fix the
Rust doc comments, signatures or TypeScript sections that changed it.
MSG
    exit 1
  fi
fi

tsc="$root/tests/node_modules/.bin/tsc"
if [[ ! -x "$tsc" ]]; then
  echo "check-api.sh: typescript is not installed; run: (cd tests && npm ci)" >&2
  exit 1
fi
"$tsc" -p "$crate_dir/api/tsconfig.json"
echo "check-api.sh: the TypeScript API is the committed one and typechecks"
