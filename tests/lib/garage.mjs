// Starts a throwaway Garage cluster on loopback through tests/stores/garage.sh.
import { execFile, execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './files.mjs';
import { repoRoot } from './server.mjs';

const run = promisify(execFile);
const script = path.join(repoRoot, 'tests/stores/garage.sh');

/**
 * Why Garage tests cannot run here, or null when they can. The locked Garage build missing is only a reason to
 * skip outside CI: under CI=true the tests run and fail, so a broken install cannot pass quietly.
 */
export function garageMissing() {
  try {
    execFileSync(script, ['check'], { stdio: 'ignore' });
    return null;
  } catch {
    const why = 'the locked garage build is not installed (run tests/stores/garage.sh install, or scripts/setup.sh test)';
    return process.env.CI === 'true' ? null : why;
  }
}

/**
 * Starts `nodes` (1 or 3) Garage nodes; resolves to the S3 endpoints (one per node, node 1
 * first), credentials, region and bucket, plus `killNode(n)` (SIGKILL, 1-based) and `stop()`.
 * The nodes stop by themselves if this process dies before calling stop().
 */
export async function startGarage({ nodes = 1 } = {}) {
  const dir = await tempDir('s3-direct-garage-');
  let stdout;
  try {
    ({ stdout } = await run(script, ['start', dir, '--nodes', String(nodes)], {
      maxBuffer: 1 << 20,
      env: { ...process.env, GARAGE_OWNER_PID: String(process.pid) },
    }));
  } catch (err) {
    await run(script, ['stop', dir]).catch(() => {});
    throw new Error(`garage (${nodes} node(s)) did not start: ${err.stderr || err.message}`);
  }
  const vars = Object.fromEntries(stdout.split('\n').filter((l) => l.includes('=')).map((l) => {
    const i = l.indexOf('=');
    return [l.slice(0, i), l.slice(i + 1)];
  }));
  const endpoints = (vars.GARAGE_ENDPOINTS ?? vars.GARAGE_ENDPOINT).split(',');
  return {
    dir,
    endpoint: vars.GARAGE_ENDPOINT,
    endpoints,
    accessKey: vars.GARAGE_ACCESS_KEY,
    secretKey: vars.GARAGE_SECRET_KEY,
    region: vars.GARAGE_REGION,
    bucket: vars.GARAGE_BUCKET,
    /** SIGKILLs node `n` (1-based); resolves once the process is gone. */
    async killNode(n) {
      try {
        await run(script, ['kill-node', dir, String(n)]);
      } catch (err) {
        throw new Error(`could not kill garage node ${n}: ${err.stderr || err.message}`);
      }
    },
    async stop() {
      await run(script, ['stop', dir]).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
