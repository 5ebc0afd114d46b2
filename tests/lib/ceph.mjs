// Starts a throwaway Ceph radosgw on loopback through tests/stores/ceph.sh.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './server.mjs';

const run = promisify(execFile);
const script = path.join(repoRoot, 'tests/stores/ceph.sh');

export async function startCeph() {
  const dir = await mkdtemp(path.join(tmpdir(), 's3-direct-ceph-'));
  let stdout;
  try {
    ({ stdout } = await run(script, ['start', dir], {
      maxBuffer: 1 << 20,
      // The cluster stops by itself if this test process dies before calling stop().
      env: { ...process.env, CEPH_OWNER_PID: String(process.pid) },
    }));
  } catch (err) {
    throw new Error(`ceph radosgw did not start: ${err.stderr || err.message}`);
  }
  const vars = Object.fromEntries(stdout.split('\n').filter((l) => l.includes('=')).map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1)];
  }));
  return {
    endpoint: vars.CEPH_ENDPOINT,
    accessKey: vars.CEPH_ACCESS_KEY,
    secretKey: vars.CEPH_SECRET_KEY,
    region: vars.CEPH_REGION ?? 'us-east-1',
    async stop() {
      await run(script, ['stop', dir]).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
