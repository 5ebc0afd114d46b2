#!/usr/bin/env bash
# Packs the built npm package (wasm-client/pkg) with `npm pack`, installs the tarball offline
# into an empty project, and checks under node that its entry points and types resolve:
# the main module's exports, `s3-direct/widget` and the module it imports on the first folder,
# the `.wasm` file, and the TypeScript types through the package's `exports` map. (The module
# itself needs a browser to run; this checks the packaging.
#
#   wasm-client/check-pack.sh   (after wasm-client/build.sh)
set -euo pipefail

crate_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$crate_dir/.." && pwd)"
pkg="$crate_dir/pkg"
if [[ ! -f "$pkg/package.json" ]]; then
  echo "check-pack.sh: $pkg is not built; run wasm-client/build.sh first" >&2
  exit 1
fi
tsc="$root/tests/node_modules/.bin/tsc"
if [[ ! -x "$tsc" ]]; then
  echo "check-pack.sh: typescript is not installed; run: (cd tests && npm ci)" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/s3-direct-pack.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dist="$work/dist"
mkdir -p "$dist"
tarball="$(cd "$dist" && npm pack "$pkg" --silent)"
echo "check-pack.sh: packed $tarball ($(wc -c <"$dist/$tarball") bytes, $(tar -tzf "$dist/$tarball" | wc -l) files)"

app="$work/app"
mkdir -p "$app"
cat >"$app/package.json" <<'JSON'
{ "name": "s3-direct-pack-check", "private": true, "type": "module" }
JSON
# --offline: the package must install from the tarball alone (it has no dependencies).
(cd "$app" && npm install --offline --no-audit --no-fund --silent "$dist/$tarball")

cat >"$app/check.mjs" <<'JS'
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const main = await import('s3-direct');
const want = ['default', 'initSync', 'Uploader', 'UploadHandle', 'UploadQueue', 'QueueItem'];
const missing = want.filter((name) => typeof main[name] !== 'function');
if (missing.length) throw new Error(`s3-direct lacks the exports ${missing.join(', ')}`);
for (const entry of ['s3-direct/widget', 's3-direct/s3_direct_bg.wasm', 's3-direct/package.json']) {
  const file = fileURLToPath(import.meta.resolve(entry));
  if (!existsSync(file)) throw new Error(`${entry} resolves to ${file}, which is not in the package`);
}
// The checksum worker's script and module, reached by URL from the page module's snippet: the
// script imports the module's glue, which exports the hashers.
const root = path.dirname(fileURLToPath(import.meta.resolve('s3-direct/package.json')));
for (const file of ['checksum-worker.js', 's3_direct_checksum.js', 's3_direct_checksum_bg.wasm']) {
  if (!existsSync(path.join(root, file))) throw new Error(`the package lacks ${file}, which its checksum worker loads`);
}
const worker = await import(pathToFileURL(path.join(root, 'checksum-worker.js')).href);
if (typeof worker.hashPart !== 'function') throw new Error('checksum-worker.js does not export hashPart');
// The widget's folder module, imported by a relative path from widget.js the first time a folder
// is chosen or dropped.
const widget = fileURLToPath(import.meta.resolve('s3-direct/widget'));
const lazy = [...readFileSync(widget, 'utf8').matchAll(/import\('\.\/([^']+)'\)/g)].map((m) => m[1]);
if (!lazy.includes('widget-folders.js')) throw new Error(`widget.js no longer imports ./widget-folders.js (it imports ${lazy.join(', ') || 'nothing'} when needed)`);
for (const file of lazy) {
  if (!existsSync(path.join(root, file))) throw new Error(`the package lacks ${file}, which widget.js imports`);
}
const folders = await import(pathToFileURL(path.join(root, 'widget-folders.js')).href);
if (typeof folders.walkDrop !== 'function' || typeof folders.Folder !== 'function') {
  throw new Error('widget-folders.js does not export walkDrop and Folder');
}
// The stream part store, imported and started as a worker by URL from the page module's snippet.
if (!existsSync(path.join(root, 'part-store.js'))) throw new Error('the package lacks part-store.js, which stream uploads import');
const store = await import(pathToFileURL(path.join(root, 'part-store.js')).href);
if (typeof store.open !== 'function') throw new Error('part-store.js does not export open');
// The spool's worker script, reached by URL from spool.js.
if (!existsSync(path.join(root, 'spool-worker.js'))) throw new Error('the package lacks spool-worker.js, which s3-direct/spool starts');
console.log(`check-pack.sh: s3-direct exports ${Object.keys(main).sort().join(', ')}`);
JS
(cd "$app" && node check.mjs)

cat >"$app/types.ts" <<'TS'
import init, { UploadQueue, Uploader, type QueueProgress, type UploadResult } from 's3-direct';
import 's3-direct/widget';
import { spooledUploads, uploadSpooled, type SpooledUpload } from 's3-direct/spool';

export async function use(file: File): Promise<[UploadResult, QueueProgress]> {
  await init();
  const result = await new Uploader({ endpoint: '/s3' }).upload(file);
  const queue = new UploadQueue({ concurrency: 6 });
  queue.add(file);
  return [result, queue.progress];
}

export async function spooled(uploader: Uploader, stream: ReadableStream<Blob>): Promise<UploadResult[]> {
  const left: SpooledUpload[] = await spooledUploads();
  const results = await Promise.all(left.map((s) => s.resume(uploader, { onProgress: (p) => p.bytesSent })));
  results.push(await uploadSpooled(uploader, stream, { filename: 'take.webm', contentType: 'video/webm' }));
  // @ts-expect-error a spooled stream needs a filename, to upload and to resume under
  await uploadSpooled(uploader, stream, { contentType: 'video/webm' });
  return results;
}
TS
cat >"$app/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "strict": true, "noEmit": true, "target": "es2022", "module": "nodenext",
    "moduleResolution": "nodenext", "lib": ["es2022", "dom", "esnext.disposable"], "types": []
  },
  "files": ["types.ts"]
}
JSON
(cd "$app" && "$tsc" -p tsconfig.json)
echo "check-pack.sh: the tarball installs offline and its exports and types resolve"
