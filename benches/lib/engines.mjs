// The benchmark's engine section: upload throughput and peak browser memory of s3-direct's page and
// of the browser ceiling page on each browser engine (Chromium, Firefox ESR, WebKitGTK), driven
// through the test suite's engine interface (tests/lib/engines.mjs, which needs tests/node_modules).
//
// Memory: every 200 ms the PSS (/proc/<pid>/smaps_rollup: shared pages split between the processes
// that map them; in total, and its anonymous and shared-memory part apart from mapped files) of
// each process the engine started is summed: Chromium's and Firefox's process
// trees (parent, renderers/content processes, GPU and network processes), and for WebKit the tree
// of WebKitWebDriver (the MiniBrowser it starts, with WebKit's web and network processes; the
// driver itself adds a few MiB; Xvfb is left out). The row shows the peak's growth over the level
// measured once the page had loaded and the file was chosen, as the memory section does for
// Chromium.
import { readFileSync } from 'node:fs';
import { processTree, cpuSeconds } from './proc.mjs';

const engineLib = new URL('../../tests/lib/engines.mjs', import.meta.url);

/** Direct children of this process now, with their command names. */
function children() {
  return processTree(process.pid).filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
    } catch {
      return false;
    }
  }).map((pid) => {
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      // gone meanwhile
    }
    return { pid, comm };
  });
}

/** Starts engine `name`; resolves to it with `roots`: the processes it started (Xvfb excepted). */
export async function launch(name) {
  const { launchEngine } = await import(engineLib);
  const before = new Set(children().map((c) => c.pid));
  const engine = await launchEngine(name);
  engine.roots = children().filter((c) => !before.has(c.pid) && c.comm !== 'Xvfb').map((c) => c.pid);
  if (engine.roots.length === 0) throw new Error(`cannot find the processes of ${name}`);
  return engine;
}

/**
 * PSS of the engine's processes in bytes: the whole, and the part of it that is anonymous memory
 * and shared memory (heaps, buffers) rather than mapped files, whose pages the kernel can drop.
 */
function pss(roots) {
  const out = { total: 0, anon: 0 };
  for (const pid of roots.flatMap((root) => processTree(root))) {
    let text;
    try {
      text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
    out.total += field('Pss');
    out.anon += field('Pss_Anon') + field('Pss_Shmem');
  }
  return out;
}

/** CPU seconds of every process the engine started, summed by command name. */
function cpuByName(roots) {
  const out = {};
  for (const pid of roots.flatMap((root) => processTree(root))) {
    let comm;
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      continue; // gone meanwhile
    }
    out[comm] = (out[comm] ?? 0) + cpuSeconds(pid);
  }
  return out;
}

/** What each process name spent between two readings of cpuByName (new processes count whole). */
const cpuSpent = (before, after) => Object.fromEntries(Object.entries(after)
  .map(([comm, sec]) => [comm, sec - (before[comm] ?? 0)])
  .filter(([, sec]) => sec >= 0.05)
  .sort((a, b) => b[1] - a[1]));

/** One upload through `page` (bench page already open, file chosen); never throws. */
async function measure(engine, page, params, timeoutMs) {
  const baseline = pss(engine.roots);
  const peak = { ...baseline };
  const sample = () => {
    const now = pss(engine.roots);
    peak.total = Math.max(peak.total, now.total);
    peak.anon = Math.max(peak.anon, now.anon);
  };
  const timer = setInterval(sample, 200);
  const cpuBefore = cpuByName(engine.roots);
  try {
    // Started, then polled: a classic WebDriver script has a deadline of its own (30 s).
    await page.evaluate((p) => {
      window.benchOutcome = null;
      window.bench.run(p).then((result) => { window.benchOutcome = { result }; },
        (err) => { window.benchOutcome = { error: String(err?.message ?? err) }; });
    }, params);
    const outcome = await page.waitFor(() => window.benchOutcome, null, {
      timeout: timeoutMs, interval: 250, what: 'the upload to end',
    });
    if (outcome.error) throw new Error(outcome.error);
    const byProcess = cpuSpent(cpuBefore, cpuByName(engine.roots));
    const browserCpu = Object.values(byProcess).reduce((a, b) => a + b, 0);
    return { ...outcome.result, browserCpu, byProcess };
  } finally {
    clearInterval(timer);
    sample();
    Object.assign(measure, {
      last: {
        baselinePss: baseline.total,
        browserPss: peak.total,
        browserPssGrowth: peak.total - baseline.total,
        browserAnonPssGrowth: peak.anon - baseline.anon,
      },
    });
  }
}

/**
 * Per engine, per size, per run: s3-direct's default client and the browser ceiling at the same
 * part size × 6, one after the other on the embedded store. `ctx` lends the runner's helpers.
 */
export async function engineSection(results, dir, ctx) {
  const { config, log, stackFor, randomFile, MiB, defaultPartFor, verifyAndDelete, summary } = ctx;
  const kinds = [
    { id: 's3d', label: "s3-direct's page, default settings", page: 's3direct', params: () => ({}) },
    { id: 'ceiling', label: "browser ceiling (bare XHR), the default's part size × 6", page: 'ceiling', params: (size) => ({ partSize: defaultPartFor(size), concurrency: 6 }) },
  ];
  const cells = new Map();
  for (const name of config.engines) {
    let engine;
    try {
      engine = await launch(name);
    } catch (err) {
      results.notes.push(`engine ${name} could not start: ${err.message}`);
      continue;
    }
    results.versions[name] = engine.version;
    try {
      for (const sizeMiB of config.sizesMiB) {
        for (let run = 1; run <= config.runs; run += 1) {
          for (const kind of kinds) {
            const size = sizeMiB * MiB;
            const stack = await stackFor('embedded', size);
            const label = `${name}-${kind.id}-${sizeMiB}-${run}`;
            const file = await randomFile(dir, `${label}.bin`, size);
            let r;
            let page;
            try {
              page = await engine.newPage();
              await page.goto(`${stack.signer.url}/${kind.page}.html`);
              await page.waitFor(() => document.body.dataset.ready === 'true', null, { timeout: 30_000, what: 'the bench page' });
              await page.setFiles('#picker', [file.path]);
              const out = await measure(engine, page, kind.params(size), Math.max(120_000, (size / 5e6) * 1000));
              const verified = await verifyAndDelete(stack.client, stack.store.bucket, out.key, file);
              r = {
                ok: true, mbPerSec: size / 1e6 / out.seconds, seconds: out.seconds, browserCpu: out.browserCpu,
                byProcess: out.byProcess, memory: measure.last, verified,
              };
            } catch (err) {
              r = { ok: false, error: err.message.split('\n')[0].slice(0, 300) };
            } finally {
              await page?.close().catch(() => {});
              await file.remove();
            }
            log(`engine ${label}: ${r.ok ? `${r.mbPerSec.toFixed(1)} MB/s, browser PSS +${(r.memory.browserPssGrowth / MiB).toFixed(0)} MiB (anonymous +${(r.memory.browserAnonPssGrowth / MiB).toFixed(0)} MiB)${r.verified ? '' : ' NOT VERIFIED'}` : `failed: ${r.error}`}`);
            const k = `${name}|${sizeMiB}|${kind.id}`;
            if (!cells.has(k)) cells.set(k, { engine: name, version: engine.version, sizeMiB, variant: kind.id, label: kind.label, runs: [] });
            cells.get(k).runs.push(r);
          }
        }
      }
    } finally {
      await engine.close().catch(() => {});
    }
  }
  for (const cell of cells.values()) {
    const ok = cell.runs.filter((r) => r.ok);
    cell.mbPerSec = summary(ok.map((r) => r.mbPerSec));
    cell.browserCpu = summary(ok.map((r) => r.browserCpu));
    cell.byProcess = ok.at(-1)?.byProcess ?? null; // the last run's, to see where the CPU went
    cell.browserPssGrowth = summary(ok.map((r) => r.memory.browserPssGrowth));
    cell.browserAnonPssGrowth = summary(ok.map((r) => r.memory.browserAnonPssGrowth));
    cell.verified = `${ok.filter((r) => r.verified).length}/${cell.runs.length}`;
    cell.failures = cell.runs.filter((r) => !r.ok).map((r) => r.error);
    results.engines.push(cell);
  }
}
