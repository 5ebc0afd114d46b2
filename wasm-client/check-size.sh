#!/usr/bin/env bash
# Prints what the built package weighs on the wire (gzip -9) and fails when a part grows past its
# budget, so that growth is a deliberate change of a number here (and of BENCHMARKS.md, "Page
# weight"), never an accident. Sizes are deterministic for a given toolchain, unlike times.
#
#   wasm-client/check-size.sh   (after wasm-client/build.sh)
#
# - page: what a page loads before its first upload: the page's module, its JS glue and the
#   snippets the glue imports;
# - widget: the <s3-direct-upload> element on top of that;
# - widget folders: the widget's folder module, loaded on top of the widget when a folder is
#   first chosen or dropped;
# - part store: its script (the module and its worker), on top of the page, for uploads of streams;
# - spool: `s3-direct/spool` and its worker's script, on top of the page, for pages that spool streams;
# - checksum worker: its script, the checksum module's glue and module, loaded only by uploads
#   that checksum their parts.
set -euo pipefail

pkg="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pkg"
if [[ ! -f "$pkg/s3_direct_bg.wasm" ]]; then
  echo "check-size.sh: $pkg is not built; run wasm-client/build.sh first" >&2
  exit 1
fi

# Budgets in gzipped bytes: what the parts weighed when last cut down, with a little room.
page_budget=119100
widget_budget=14200
folders_budget=3300
store_budget=2800
spool_budget=6400
worker_budget=55000

gz() { # files... -> the sum of their gzip -9 sizes
  local total=0 f
  for f in "$@"; do total=$((total + $(gzip -9 -c "$f" | wc -c))); done
  echo "$total"
}
raw() { cat "$@" | wc -c; }

page=("$pkg/s3_direct_bg.wasm" "$pkg/s3_direct.js" "$pkg"/snippets/*/*.js)
widget=("$pkg/widget.js")
folders=("$pkg/widget-folders.js")
store=("$pkg/part-store.js")
spool=("$pkg/spool.js" "$pkg/spool-worker.js")
worker=("$pkg/checksum-worker.js" "$pkg/s3_direct_checksum.js" "$pkg/s3_direct_checksum_bg.wasm")

status=0
check() { # name budget files...
  local name="$1" budget="$2"
  shift 2
  local size
  size="$(gz "$@")"
  printf 'check-size.sh: %-16s %8d bytes, %7d gzipped (budget %d)\n' "$name" "$(raw "$@")" "$size" "$budget"
  if ((size > budget)); then
    echo "check-size.sh: the $name grew past its budget by $((size - budget)) gzipped bytes;" \
      "cut it down, or raise the budget here and in BENCHMARKS.md (\"Page weight\") on purpose" >&2
    status=1
  fi
}
check page "$page_budget" "${page[@]}"
check widget "$widget_budget" "${widget[@]}"
check "widget folders" "$folders_budget" "${folders[@]}"
check "part store" "$store_budget" "${store[@]}"
check spool "$spool_budget" "${spool[@]}"
check "checksum worker" "$worker_budget" "${worker[@]}"
exit "$status"
