// Test files of random bytes, written to disk (playwright hands large files over by path) with
// their SHA-256 computed while writing.
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

// Test files and store data run to GBs per run: every temporary folder is removed when the test
// process exits, passed or failed, so repeated runs cannot fill the disk.
const created = [];
process.on('exit', () => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the process exits. */
export async function tempDir(prefix = 's3-direct-e2e-') {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Writes `size` random bytes to `dir/name`; resolves to `{ path, name, size, sha256 }`. */
export async function randomFile(dir, name, size) {
  const file = path.join(dir, name);
  const hash = createHash('sha256');
  const fh = await open(file, 'w');
  try {
    for (let left = size; left > 0;) {
      const chunk = randomBytes(Math.min(left, 4 << 20));
      hash.update(chunk);
      await fh.write(chunk);
      left -= chunk.length;
    }
  } finally {
    await fh.close();
  }
  return { path: file, name, size, sha256: hash.digest('hex') };
}

export const MiB = 1024 * 1024;
