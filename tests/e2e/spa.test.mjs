// The Vite + React example in web/spa, built against the s3-direct npm package as a user gets it:
// the test packs wasm-client/pkg with `npm pack`, installs the tarball into the example (its own
// npm scripts, `install-s3-direct` and `build`), builds it with Vite, serves the bundle with
// `vite preview` (which forwards /s3 to the signing server) and uploads through it in headless
// Chromium, with part checksums computed in the Web Worker the package starts from inside the bundle.
// A second test does the same through `vite` (the dev server), where the package is served unbundled.
//
// Needs web/spa/node_modules (`scripts/setup.sh test` runs `npm ci` there) and a built
// wasm-client/pkg (`wasm-client/build.sh`).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { MiB, randomFile, tempDir } from '../lib/files.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, repoRoot, startServer } from '../lib/server.mjs';

const run = promisify(execFile);
const spaDir = path.join(repoRoot, 'web/spa');
const bucket = 's3-direct';

/** Runs an npm script of the example; its output is shown only when it fails. */
async function npmRun(script, ...args) {
  try {
    await run('npm', ['run', '--silent', script, ...(args.length ? ['--', ...args] : [])], {
      cwd: spaDir, maxBuffer: 16 * MiB, env: { ...process.env, NO_COLOR: '1' },
    });
  } catch (err) {
    throw new Error(`npm run ${script} failed:\n${err.stdout}\n${err.stderr}`);
  }
}

/** Starts `vite` or `vite preview` in the example on a random loopback port. */
async function startVite(args, signingServer) {
  const child = spawn(path.join(spaDir, 'node_modules/.bin/vite'), [
    ...args, '--host', '127.0.0.1', '--port', '0', '--strictPort',
  ], {
    cwd: spaDir,
    env: { ...process.env, NO_COLOR: '1', S3_DIRECT_URL: signingServer },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (chunk) => { output = (output + chunk).slice(-10_000); });
  const url = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      output = (output + line + '\n').slice(-10_000);
      const m = /Local:\s+(http:\/\/127\.0\.0\.1:\d+)\//.exec(line);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`vite ${args[0] ?? ''} exited (${code}):\n${output}`)));
  });
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

/**
 * Opens the example and records, in the page, every percentage it shows (the text React renders
 * from its state), before any script of the app runs.
 */
async function openApp(browser, url) {
  const page = await browser.newPage();
  const problems = [];
  const workers = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on('worker', (w) => workers.push(w.url()));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${r.request().method()} ${r.url()} answered ${r.status()}`);
  });
  await page.addInitScript(() => {
    const shown = [];
    window.percentShown = shown;
    new MutationObserver(() => {
      const text = document.querySelector('[data-testid="percent"]')?.textContent;
      if (text !== undefined && text !== shown.at(-1)) shown.push(text);
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(url);
  await page.waitForSelector('main[data-ready="true"]', { timeout: 30_000 }).catch((err) => {
    throw new Error(`the example did not load: ${problems.join('; ') || err.message}`);
  });
  return { page, problems, workers };
}

/** Uploads `file` through the app and waits for it to finish; returns what the page shows. */
async function uploadThroughApp(page, file) {
  await page.setInputFiles('[data-testid="file"]', file.path);
  await page.waitForSelector('main[data-status="done"], main[data-status="error"]', { timeout: 180_000 });
  return page.evaluate(() => ({
    status: document.querySelector('main').dataset.status,
    key: document.querySelector('[data-testid="key"]')?.textContent ?? null,
    text: document.querySelector('main').innerText,
    percentShown: window.percentShown.map(Number),
  }));
}

/** The percentages shown rise monotonically from 0 and end at 100, shown exactly once. */
function assertProgress(shown) {
  assert.ok(shown.length >= 4, `progress was shown along the way: ${shown.join(', ')}`);
  assert.equal(shown[0], 0, 'progress starts at 0');
  for (let i = 1; i < shown.length; i++) {
    assert.ok(shown[i] >= shown[i - 1], `progress went back from ${shown[i - 1]} to ${shown[i]}: ${shown.join(', ')}`);
  }
  assert.equal(shown.at(-1), 100, 'progress ends at 100');
  assert.equal(shown.filter((p) => p === 100).length, 1, `100 % is shown once: ${shown.join(', ')}`);
}

describe('Vite SPA example (web/spa) with the packed npm package', () => {
  let browser;
  let server;
  let s3;
  let dist;

  before(async () => {
    if (!existsSync(path.join(spaDir, 'node_modules/.bin/vite'))) {
      throw new Error('web/spa has no node_modules; run scripts/setup.sh test (it runs npm ci there)');
    }
    if (!existsSync(path.join(repoRoot, 'wasm-client/pkg/package.json'))) {
      throw new Error('wasm-client/pkg is not built; run wasm-client/build.sh');
    }
    dist = path.join(await tempDir('s3-direct-spa-'), 'dist');
    // npm pack wasm-client/pkg and npm install the tarball, then tsc and vite build.
    await npmRun('install-s3-direct');
    await npmRun('build', '--outDir', dist, '--emptyOutDir', '--logLevel', 'warn');
    [browser, server] = await Promise.all([launchBrowser(), startServer()]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('the production build uploads 64 MiB with MD5 part checksums from its worker; progress reaches 100 % once', async () => {
    const file = await randomFile(await tempDir(), 'spa-64mib.bin', 64 * MiB);
    const vite = await startVite(['preview', '--outDir', dist], server.url);
    const { page, problems, workers } = await openApp(browser, `${vite.url}/?checksum=md5`);
    try {
      const shown = await uploadThroughApp(page, file);
      assert.equal(shown.status, 'done', shown.text);
      assertProgress(shown.percentShown);
      assert.ok(shown.key?.endsWith('/spa-64mib.bin'), `the page shows the key: ${shown.key}`);
      assert.deepEqual(await objectSha256(s3, bucket, shown.key), { sha256: file.sha256, size: file.size });
      assert.equal(workers.length, 1, `one checksum worker ran: ${workers.join(', ')}`);
      assert.match(workers[0], /^http:\/\/127\.0\.0\.1:\d+\/assets\/s3_direct-[\w-]+\.js$/, 'the worker is the bundled one');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
      await vite.stop();
    }
  });

  it('the dev server (vite) serves the package unbundled: the .wasm and the worker load', async () => {
    const file = await randomFile(await tempDir(), 'spa-dev.bin', 11 * MiB + 4321);
    const vite = await startVite([], server.url);
    const { page, problems, workers } = await openApp(browser, `${vite.url}/?checksum=md5&partSize=5`);
    try {
      const shown = await uploadThroughApp(page, file);
      assert.equal(shown.status, 'done', shown.text);
      assertProgress(shown.percentShown);
      assert.deepEqual(await objectSha256(s3, bucket, shown.key), { sha256: file.sha256, size: file.size });
      assert.equal(workers.length, 1, `one checksum worker ran: ${workers.join(', ')}`);
      assert.deepEqual(problems.filter((p) => !/\[vite\]/.test(p)), []);
    } finally {
      await page.close();
      await vite.stop();
    }
  });
});
