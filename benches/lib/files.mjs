// Temporary folders and files of random bytes. Everything created here is removed when the
// process exits (also on Ctrl-C): the benchmarks write GBs to a shared disk.
import { createHash, randomFillSync } from 'node:crypto';
import { rmSync, statfsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const MiB = 1024 * 1024;
const created = [];
const cleanup = () => {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

/** A fresh temporary folder, removed when the process exits. */
export async function tempDir(prefix = 's3-direct-bench-') {
  const dir = await mkdtemp(path.join(process.env.S3_DIRECT_BENCH_TMP ?? tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Removes a folder made by `tempDir` now rather than at exit. */
export async function removeTempDir(dir) {
  await rm(dir, { recursive: true, force: true });
  const i = created.indexOf(dir);
  if (i >= 0) created.splice(i, 1);
}

/** Free bytes on the file system holding `dir`. */
export function freeBytes(dir) {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/**
 * Writes `size` fresh random bytes to `dir/name` (a new file every time: Garage deduplicates
 * blocks, so re-sending a file it has seen would measure less work) and hashes them on the way.
 * Resolves to `{ path, name, size, sha256, remove() }`.
 */
export async function randomFile(dir, name, size) {
  if (freeBytes(dir) < size + 2 * 1024 * MiB) {
    throw new Error(`not enough free disk in ${dir} for a ${size} byte file (keeping 2 GiB free)`);
  }
  const file = path.join(dir, name);
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(8 * MiB);
  const fh = await open(file, 'w');
  try {
    for (let left = size; left > 0;) {
      const n = Math.min(left, chunk.length);
      const bytes = chunk.subarray(0, n);
      randomFillSync(bytes);
      hash.update(bytes);
      await fh.write(bytes);
      left -= n;
    }
  } finally {
    await fh.close();
  }
  return { path: file, name, size, sha256: hash.digest('hex'), remove: () => rm(file, { force: true }) };
}
