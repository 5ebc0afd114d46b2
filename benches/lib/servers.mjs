// The processes a benchmark run needs, each on a random loopback port and stopped at exit:
// s3-direct (as the embedded store, and as the signing server in front of a store), Uppy
// Companion (in benches/companion-server.mjs) and a single-node Garage (tests/stores/garage.sh).
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { tempDir } from './files.mjs';

export const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoRoot = path.resolve(benchDir, '..');
const run = promisify(execFile);

const children = new Set();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Spawns `cmd` and resolves once `ready(line, info)` returns true for a line of its stdout. */
function startProcess(name, cmd, args, env, ready) {
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
    if (process.env.S3_DIRECT_BENCH_LOG) process.stderr.write(chunk);
  });
  const info = {
    name,
    pid: child.pid,
    child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await once(child, 'exit');
        clearTimeout(timer);
      }
      children.delete(child);
    },
  };
  const lines = readline.createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      if (ready(line, info)) resolve(info);
    });
    child.once('exit', (code, signal) => reject(new Error(
      `${name} exited (${code ?? signal}) before it was ready:\n${stderr}`,
    )));
  });
}

export const storeCredentials = {
  accessKeyId: 'bench-access-key',
  secretAccessKey: 'bench-secret-key-0123456789',
};

/**
 * s3-direct's embedded store (s3s-fs) in its own process, so the store's CPU is measured apart
 * from any signing server. Resolves to `{ endpoint, bucket, region, credentials, pid, stop }`.
 */
export async function startEmbeddedStore({ bin }) {
  const dataDir = await tempDir('s3-direct-bench-store-');
  const info = await startProcess('embedded store', bin, [
    '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--rate-limit', '0',
  ], {
    AWS_ACCESS_KEY_ID: storeCredentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: storeCredentials.secretAccessKey,
    RUST_LOG: 'warn',
  }, (line, i) => {
    const m = /^embedded store: (http:\/\/\S+)/.exec(line);
    if (m) i.endpoint = m[1];
    return /^listening on /.test(line) && Boolean(i.endpoint);
  });
  return {
    ...info,
    dataDir,
    kind: 'embedded',
    bucket: 's3-direct',
    region: 'us-east-1',
    credentials: storeCredentials,
  };
}

/** A single-node Garage through tests/stores/garage.sh (which needs `garage` on PATH). */
export async function startGarage() {
  const dir = await tempDir('s3-direct-bench-garage-');
  const script = path.join(repoRoot, 'tests/stores/garage.sh');
  const env = {
    ...process.env,
    GARAGE_ACCESS_KEY: 'GKbench0123456789abcdef01',
    GARAGE_SECRET_KEY: 'bench-garage-secret-0123456789abcdef0123456789abcdef0123456789ab',
    GARAGE_BUCKET: 'bench',
    GARAGE_OWNER_PID: String(process.pid),
  };
  const { stdout } = await run(script, ['start', dir], { env });
  const vars = Object.fromEntries(stdout.trim().split('\n')
    .map((l) => l.split('=')).map(([k, ...v]) => [k, v.join('=')]));
  const pid = Number(readFileSync(path.join(dir, 'run/node1.pid'), 'utf8').trim());
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await run(script, ['stop', dir], { env }).catch(() => {});
  };
  process.on('exit', () => {
    if (!stopped) {
      try {
        // Synchronous at exit: garage.sh's watchdog would also stop it once we are gone.
        spawn(script, ['stop', dir], { env, stdio: 'ignore', detached: true }).unref();
      } catch {
        // nothing more to do
      }
    }
  });
  return {
    kind: 'garage',
    name: 'garage',
    pid,
    endpoint: vars.GARAGE_ENDPOINT,
    bucket: vars.GARAGE_BUCKET,
    region: vars.GARAGE_REGION,
    credentials: { accessKeyId: vars.GARAGE_ACCESS_KEY, secretAccessKey: vars.GARAGE_SECRET_KEY },
    dataDir: dir,
    stop,
  };
}

/**
 * The s3-direct signing server (release build) in front of `store`, serving the bench pages
 * from `webDir` and the WASM package from `pkgDir`. No rate limit: the benchmarks and Uppy's
 * per-part signing would hit the default one.
 */
export function startSigner({ bin, store, webDir, pkgDir, extraArgs = [] }) {
  return startProcess('s3-direct', bin, [
    '--listen', '127.0.0.1:0',
    '--endpoint', store.endpoint,
    '--bucket', store.bucket,
    '--region', store.region,
    '--path-style',
    '--rate-limit', '0',
    '--web-dir', webDir,
    '--pkg-dir', pkgDir,
    ...extraArgs,
  ], {
    AWS_ACCESS_KEY_ID: store.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: store.credentials.secretAccessKey,
    S3_DIRECT_UPLOAD_SECRET: 'bench-upload-secret-0123456789abcdef0123456789',
    RUST_LOG: 'warn',
  }, (line, i) => {
    const m = /^listening on (http:\/\/\S+)/.exec(line);
    if (m) i.url = m[1];
    return Boolean(m);
  });
}

/** Uppy Companion in front of `store` (benches/companion-server.mjs), serving `webDir` too. */
export async function startCompanion({ store, webDir }) {
  const dataDir = await tempDir('s3-direct-bench-companion-');
  return startProcess('companion', process.execPath, [path.join(benchDir, 'companion-server.mjs')], {
    BENCH_STORE_ENDPOINT: store.endpoint,
    BENCH_STORE_BUCKET: store.bucket,
    BENCH_STORE_REGION: store.region,
    BENCH_STORE_KEY: store.credentials.accessKeyId,
    BENCH_STORE_SECRET: store.credentials.secretAccessKey,
    BENCH_WEB_DIR: webDir,
    BENCH_DATA_DIR: dataDir,
    // Companion's AWS SDK would otherwise sign a checksum of an empty body into every part URL,
    // which stores that check checksums (Garage) rightly refuse.
    AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    NODE_ENV: 'production',
  }, (line, i) => {
    const m = /^listening on (http:\/\/\S+)/.exec(line);
    if (m) i.url = m[1];
    return Boolean(m);
  });
}
