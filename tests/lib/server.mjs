// Starts the s3-direct binary on a random loopback port and reads the addresses it prints.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tempDir } from './files.mjs';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binary = process.env.S3_DIRECT_BIN ?? path.join(repoRoot, 'target/debug/s3-direct');

/** Credentials the tests give the embedded store, so they can read objects back through S3. */
export const embeddedCredentials = {
  accessKeyId: 'e2e-access-key',
  secretAccessKey: 'e2e-secret-key-0123456789',
};

/**
 * Starts the server. With no `endpoint` it runs the embedded store in a fresh data directory.
 * `pkgDir` serves another build of the package than wasm-client/pkg (the benchmarks' own).
 * Resolves once the server printed its `listening on` line.
 */
export async function startServer({
  args = [], env = {}, dataDir, listen = '127.0.0.1:0', pkgDir = path.join(repoRoot, 'wasm-client/pkg'),
} = {}) {
  dataDir ??= await tempDir('s3-direct-data-');
  const child = spawn(binary, [
    '--listen', listen,
    '--data-dir', dataDir,
    '--web-dir', path.join(repoRoot, 'web'),
    '--pkg-dir', pkgDir,
    ...args,
  ], {
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: embeddedCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: embeddedCredentials.secretAccessKey,
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
    if (process.env.S3_DIRECT_TEST_LOG) process.stderr.write(chunk);
  });
  const info = { dataDir, child, stderr: () => stderr };
  const lines = readline.createInterface({ input: child.stdout });
  const ready = new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      let m;
      if ((m = /^embedded store: (http:\/\/\S+)/.exec(line))) info.storeEndpoint = m[1];
      if ((m = /^listening on (http:\/\/\S+)/.exec(line))) {
        info.url = m[1];
        resolve(info);
      }
    });
    child.once('exit', (code, signal) => reject(new Error(
      `s3-direct exited (${code ?? signal}) before it was ready:\n${stderr}`,
    )));
  });
  /** Kills the process at once (no graceful shutdown), as a crash would. */
  info.kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  };
  info.stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  };
  return ready;
}
