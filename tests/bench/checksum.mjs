// Benchmark, not a test: what computing part checksums in the Web Worker costs an upload.
//
// Uploads the same file through the demo page with checksums off and with each algorithm, on the
// embedded store over loopback (the fastest link there is, so the hashing cost shows most), and
// prints throughput per run and relative to no checksum. Run from tests/:
//
//   node bench/checksum.mjs [sizeMiB=256] [runs=2]
//
// S3_DIRECT_BIN picks the server binary as for the tests. Numbers depend on the machine; the
// median of the runs is reported.
import { openDemo, waitForRow, launchBrowser } from '../lib/browser.mjs';
import { randomFile, tempDir, MiB } from '../lib/files.mjs';
import { startServer } from '../lib/server.mjs';

const sizeMiB = Number(process.argv[2] ?? 256);
const runs = Number(process.argv[3] ?? 2);
const modes = ['off', 'crc32c', 'md5', 'sha256'];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const [browser, server] = await Promise.all([launchBrowser(), startServer()]);
try {
  const dir = await tempDir('s3-direct-bench-');
  const results = {};
  for (let run = 0; run < runs; run += 1) {
    for (const mode of modes) {
      // A fresh file each time: the resume record of an earlier run must not shortcut this one.
      const file = await randomFile(dir, `bench-${mode}-${run}.bin`, sizeMiB * MiB);
      const page = await openDemo(browser, server.url, { partSize: 8, concurrency: 6, checksum: mode });
      const started = performance.now();
      await page.setInputFiles('#picker', file.path);
      const row = await waitForRow(page, file.name, { timeout: 600_000 });
      const seconds = (performance.now() - started) / 1000;
      await page.close();
      if (row.state !== 'done') throw new Error(`${mode}: ${row.detail}`);
      (results[mode] ??= []).push(seconds);
      console.error(`run ${run + 1} ${mode.padEnd(6)} ${seconds.toFixed(2)} s`);
    }
  }
  const base = median(results.off);
  console.log(`\n${sizeMiB} MiB, 8 MiB parts, 6 at once, embedded store on loopback, median of ${runs}:`);
  console.log('checksum  seconds  MB/s    cost vs off');
  for (const mode of modes) {
    const s = median(results[mode]);
    const mbps = (sizeMiB * MiB) / 1e6 / s;
    const cost = mode === 'off' ? '' : `${(((s - base) / base) * 100).toFixed(1)} %`;
    console.log(`${mode.padEnd(8)}  ${s.toFixed(2).padStart(7)}  ${mbps.toFixed(0).padStart(5)}  ${cost}`);
  }
} finally {
  await browser.close();
  await server.stop();
}
