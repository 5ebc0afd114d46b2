// The Uppy compatibility tests' shared pieces: a page of tests/<pageDir> (main.js bundled with
// esbuild, index.html) served from its own origin, opened in Chromium and fed files through its
// #picker. The pages record Uppy's events in `window.uppyEvents` and mark
// body[data-ready] / body[data-state="complete"].
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { build } from 'esbuild';
import { repoRoot } from './server.mjs';

const testsDir = path.join(repoRoot, 'tests');

/**
 * Bundles tests/<pageDir>/main.js into `outDir` and returns the page's files for `serveFiles` and
 * the bundle's inputs (paths relative to tests/). `alias` is esbuild's: it maps a package name, and
 * the subpaths under it, to another package, resolved from tests/.
 */
export async function bundlePage(pageDir, outDir, { alias } = {}) {
  const src = path.join(testsDir, pageDir);
  const { metafile } = await build({
    entryPoints: [path.join(src, 'main.js')],
    outfile: path.join(outDir, 'uppy-page.js'),
    absWorkingDir: testsDir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'warning',
    metafile: true,
    ...(alias ? { alias } : {}),
  });
  const files = {
    '/': { type: 'text/html', body: await readFile(path.join(src, 'index.html')) },
    '/uppy-page.js': { type: 'text/javascript', body: await readFile(path.join(outDir, 'uppy-page.js')) },
  };
  return { files, inputs: Object.keys(metafile.inputs) };
}

/**
 * Serves `files` on a random loopback port: the application's origin, not the signing server's.
 * `handle(req, res)`, if given, sees each request first and returns true when it answered it (an
 * application's own routes: a proxy, an authorization webhook).
 */
export async function serveFiles(files, handle) {
  const server = http.createServer((req, res) => {
    if (handle?.(req, res)) return;
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.type }).end(file.body);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * Opens the page at `appUrl`, calls `window.startUppy(config)` and waits until Uppy is set up.
 * `problems` collects the page's uncaught errors and console errors. `cookies` (`{ name, value }`)
 * are set for the application's origin first, as a sign-in would.
 */
export async function openUppy(browser, appUrl, config, { cookies = [] } = {}) {
  const page = await browser.newPage();
  if (cookies.length) await page.context().addCookies(cookies.map((c) => ({ ...c, url: appUrl })));
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  await page.goto(`${appUrl}/`);
  await page.evaluate((c) => window.startUppy(c), config);
  await page.waitForSelector('body[data-ready="true"]');
  return { page, problems };
}

/** Chooses `files` in the page's picker and resolves to the events once Uppy reports `complete`. */
export async function uploadAll(page, files) {
  await page.setInputFiles('#picker', files.map((f) => f.path));
  await page.waitForSelector('body[data-state="complete"]', { timeout: 180_000 });
  return page.evaluate(() => window.uppyEvents);
}
