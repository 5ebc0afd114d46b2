// The time-to-ready section: on each browser engine, how long a page takes from asking for the
// uploader's code to a constructed uploader, and how many bytes that moves, for s3-direct's
// client (`import('/pkg/s3_direct.js')`, `init()`, `new Uploader(…)`) and for Uppy 5 (an ESM,
// minified esbuild bundle of @uppy/core + @uppy/aws-s3: its import, then `new Uppy().use(AwsS3,
// …)`); pages in benches/pages/ready/.
//
// Each round opens a fresh profile (Chromium: a new browser context; Firefox: a new user context;
// WebKit: a new WebDriver session, so a new MiniBrowser with its own storage) and loads the page
// there three times: cold (empty cache), then twice more as new navigations in the same tab (a
// new query string for the page each time, so the page is not reloaded; its files keep their
// URLs), which are the loads from the HTTP cache. Rounds alternate the setups, so no setup always
// runs on a warmer machine.
//
// The same files are served three ways: by this section's counting server with gzip and a strong
// ETag, once with `Cache-Control: no-cache` (a cached load revalidates every file: 304s) and once
// with `max-age=3600` (a cached load is a fresh cache hit: no request); and by s3-direct's own
// server (`--pkg-dir`, as an application serves the package from it), through the same counting
// server as a forwarding proxy. Bytes are counted at the server (status line, headers and body of
// each response for a client file), and read from Resource Timing where the engine gives them.
import { cp, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { launch } from './engines.mjs';
import { tempDir } from './files.mjs';
import { benchDir, startSigner } from './servers.mjs';
import { gzipFile, startStaticServer } from './static-server.mjs';

const pagesDir = path.join(benchDir, 'pages', 'ready');
const visits = ['cold', 'cached', 'cached again'];
const isClientFile = (p) => p.startsWith('/pkg/') || p.endsWith('/uppy-ready.js');

const servings = {
  revalidate: 'counting server, gzip -9, ETag, `Cache-Control: no-cache`',
  fresh: 'counting server, gzip -9, ETag, `Cache-Control: max-age=3600`',
  own: "s3-direct's own server (`/pkg/`), through the counting server as a proxy",
};
const setups = [
  { client: 's3-direct', page: 's3direct.html', serving: 'revalidate' },
  { client: 'Uppy 5', page: 'uppy.html', serving: 'revalidate' },
  { client: 's3-direct', page: 's3direct.html', serving: 'fresh' },
  { client: 'Uppy 5', page: 'uppy.html', serving: 'fresh' },
  { client: 's3-direct', page: 's3direct.html', serving: 'own' },
];

/** The pages and Uppy's bundle in a folder of their own; resolves to that folder. */
async function preparePages() {
  const dir = await tempDir('s3-direct-bench-ready-');
  for (const name of ['measure.js', 's3direct.html', 'uppy.html']) await cp(path.join(pagesDir, name), path.join(dir, name));
  const { build } = await import('esbuild');
  await build({
    entryPoints: [path.join(pagesDir, 'uppy-entry.js')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    logLevel: 'warning',
    outfile: path.join(dir, 'uppy-ready.js'),
  });
  return dir;
}

/** Bytes and `gzip -9` bytes of what each client loads, from the files themselves. */
async function fileSizes(pkgDir, pagesOut) {
  const measure = async (what, dir, names) => {
    let raw = 0;
    let gz = 0;
    for (const name of names) {
      raw += (await readFile(path.join(dir, name))).length;
      gz += (await gzipFile(path.join(dir, name))).length;
    }
    return { what, files: names, raw, gzip: gz };
  };
  const snippets = (await readdir(path.join(pkgDir, 'snippets'), { recursive: true }))
    .filter((f) => f.endsWith('.js')).map((f) => path.join('snippets', f)).sort();
  const page = [
    await measure("s3-direct's module `s3_direct_bg.wasm`", pkgDir, ['s3_direct_bg.wasm']),
    await measure('its glue `s3_direct.js` and the snippets it imports', pkgDir, ['s3_direct.js', ...snippets]),
  ];
  return [
    ...page,
    { what: 's3-direct before its first upload', files: page.flatMap((p) => p.files), raw: page[0].raw + page[1].raw, gzip: page[0].gzip + page[1].gzip, total: true },
    await measure('the widget `widget.js`, on top (the `<s3-direct-upload>` element)', pkgDir, ['widget.js']),
    await measure('the checksum worker, on top, only with part checksums', pkgDir, ['checksum-worker.js', 's3_direct_checksum.js', 's3_direct_checksum_bg.wasm']),
    { ...(await measure("Uppy 5's bundle `uppy-ready.js` (@uppy/core + @uppy/aws-s3, esbuild, minified ESM)", pagesOut, ['uppy-ready.js'])), total: true },
  ];
}

/** Loads `url` in `page` and resolves to what the page and the server saw. */
async function visit(page, server, url) {
  server.take();
  await page.goto(url);
  const out = await page.waitFor(() => window.readyResult, null, { timeout: 60_000, what: 'the uploader to be ready' });
  if (out.error) throw new Error(out.error);
  // What init() spent after the module's last byte had arrived: compiling what streaming
  // compilation had not yet, and instantiating (null without a module, or without its timing).
  const wasm = out.resources.find((r) => r.path.endsWith('.wasm'));
  out.ms.afterWasmArrived = out.marks.init != null && wasm?.responseEnd > 0 ? out.marks.init - wasm.responseEnd : null;
  return { ...out, server: server.take().filter((r) => isClientFile(r.path)) };
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/** The sum of one Resource Timing field over the files, or null when the engine gave none. */
const rtSum = (resources, field) => {
  const xs = resources.map((r) => r[field]);
  return xs.length && xs.every((x) => typeof x === 'number') ? sum(xs) : null;
};

/** `{ 200: 4 }` → "4 × 200"; no request at all → "none". */
const statusText = (counts) => Object.entries(counts).map(([s, n]) => `${n} × ${s}`).join(', ') || 'none';

/**
 * Per engine of `config.engines`, `config.readyRounds` rounds of every setup, each round in a
 * fresh profile with a cold and two cached loads, `config.readyPauseMs` apart. `ctx` lends the
 * runner's helpers.
 */
export async function readySection(results, ctx) {
  const { config, log, stackFor, summary, bin, pkgDir } = ctx;
  const dir = await preparePages();
  results.readySizes = await fileSizes(pkgDir, dir);
  const mounts = { '/pkg/': pkgDir, '/': dir };
  const stack = await stackFor('embedded', 0);
  const signer = await startSigner({ bin, store: stack.store, webDir: dir, pkgDir });
  const servers = {
    revalidate: await startStaticServer({ mounts, gzip: true, cacheControl: 'no-cache' }),
    fresh: await startStaticServer({ mounts, gzip: true, cacheControl: 'max-age=3600' }),
    own: await startStaticServer({ upstream: signer.url }),
  };
  const cells = new Map();
  try {
    for (const name of config.engines) {
      let engine;
      try {
        if (name === 'chromium' && config.readyJsFlags) {
          // By-hand experiments on Chromium's WebAssembly caches (V8 flags for every renderer).
          const { chromiumArgs } = await import('../../tests/lib/browser.mjs');
          if (!chromiumArgs.includes(`--js-flags=${config.readyJsFlags}`)) chromiumArgs.push(`--js-flags=${config.readyJsFlags}`);
          results.notes.push(`time to ready: Chromium ran with --js-flags=${config.readyJsFlags}`);
        }
        engine = await launch(name);
      } catch (err) {
        results.notes.push(`time to ready: engine ${name} could not start: ${err.message}`);
        continue;
      }
      results.versions[name] = engine.version;
      try {
        for (let round = 1; round <= config.readyRounds; round += 1) {
          for (const setup of setups) {
            const server = servers[setup.serving];
            let page;
            try {
              page = await engine.newPage();
              for (const [i, kind] of visits.entries()) {
                const k = `${name}|${setup.client}|${setup.serving}|${kind}`;
                if (!cells.has(k)) {
                  cells.set(k, {
                    engine: name, version: engine.version, client: setup.client, serving: setup.serving,
                    servingLabel: servings[setup.serving], visit: kind, runs: [],
                  });
                }
                // Past V8's wasm caching timeout (2 s without new optimised code), so that an engine
                // that keeps compiled code beside the cached module has had the time to.
                if (i > 0) await new Promise((resolve) => { setTimeout(resolve, config.readyPauseMs); });
                let r;
                try {
                  r = { ok: true, ...(await visit(page, server, `${server.url}/${setup.page}?round=${round}&visit=${i + 1}`)) };
                } catch (err) {
                  r = { ok: false, error: err.message.split('\n')[0].slice(0, 300) };
                }
                cells.get(k).runs.push(r);
                log(`ready ${name} ${setup.client} (${setup.serving}) round ${round} ${kind}: ${r.ok
                  ? `${r.ms.total.toFixed(1)} ms, server sent ${sum(r.server.map((x) => x.bytes))} B in ${r.server.length} responses (${r.server.map((x) => x.status).join(' ') || 'none'})`
                  : `failed: ${r.error}`}`);
                if (!r.ok) break;
              }
            } finally {
              await page?.close().catch(() => {});
            }
          }
        }
      } finally {
        await engine.close().catch(() => {});
      }
    }
  } finally {
    for (const s of Object.values(servers)) await s.close();
    await signer.stop();
  }
  for (const cell of cells.values()) {
    const ok = cell.runs.filter((r) => r.ok);
    const stat = (f) => summary(ok.map(f).filter((x) => x != null));
    const statuses = {};
    for (const r of ok) {
      for (const s of r.server) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
    }
    results.ready.push({
      engine: cell.engine,
      version: cell.version,
      client: cell.client,
      serving: cell.serving,
      servingLabel: cell.servingLabel,
      visit: cell.visit,
      ms: stat((r) => r.ms.total),
      importMs: stat((r) => r.ms.import),
      initMs: stat((r) => r.ms.init ?? null),
      constructMs: stat((r) => r.ms.construct),
      afterWasmArrivedMs: stat((r) => r.ms.afterWasmArrived ?? null),
      serverBytes: stat((r) => sum(r.server.map((x) => x.bytes))),
      serverResponses: stat((r) => r.server.length),
      // Over every load of the cell, what the server answered for the client's files.
      serverStatuses: statusText(statuses),
      encodings: [...new Set(ok.flatMap((r) => r.server.map((x) => x.encoding ?? 'identity')))],
      transferSize: stat((r) => rtSum(r.resources, 'transferSize')),
      encodedBodySize: stat((r) => rtSum(r.resources, 'encodedBodySize')),
      decodedBodySize: stat((r) => rtSum(r.resources, 'decodedBodySize')),
      resourcesSeen: stat((r) => r.resources.length),
      n: `${ok.length}/${cell.runs.length}`,
      failures: cell.runs.filter((r) => !r.ok).map((r) => r.error),
      runs: cell.runs,
    });
  }
}
