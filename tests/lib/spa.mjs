// Builds and serves the Vite + React example in web/spa (its own npm scripts and vite), for the
// tests that load it in a browser.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { MiB } from './files.mjs';
import { repoRoot } from './server.mjs';

const run = promisify(execFile);
export const spaDir = path.join(repoRoot, 'web/spa');

/** Runs an npm script of the example; its output is shown only when it fails. */
export async function npmRun(script, ...args) {
  try {
    await run('npm', ['run', '--silent', script, ...(args.length ? ['--', ...args] : [])], {
      cwd: spaDir, maxBuffer: 16 * MiB, env: { ...process.env, NO_COLOR: '1' },
    });
  } catch (err) {
    throw new Error(`npm run ${script} failed:\n${err.stdout}\n${err.stderr}`);
  }
}

/** Starts `vite` or `vite preview` in the example on a random loopback port. */
export async function startVite(args, signingServer) {
  const child = spawn(path.join(spaDir, 'node_modules/.bin/vite'), [
    ...args, '--host', '127.0.0.1', '--port', '0', '--strictPort',
  ], {
    cwd: spaDir,
    env: { ...process.env, NO_COLOR: '1', S3_DIRECT_URL: signingServer },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (chunk) => { output = (output + chunk).slice(-10_000); });
  let timer;
  const url = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      output = (output + line + '\n').slice(-10_000);
      const m = /Local:\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(line);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`vite ${args[0] ?? ''} exited (${code}):\n${output}`)));
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`vite ${args[0] ?? ''} printed no address within 60 s:\n${output}`));
    }, 60_000);
  }).finally(() => clearTimeout(timer));
  return {
    url,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
    },
  };
}
