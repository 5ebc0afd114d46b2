// Renders a run's results (benches/results/latest.json) as Markdown.
const MiB = 1024 * 1024;
const f = (x, digits = 1) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(digits));
const range = (s, digits = 1, scale = 1) => (s ? `${f(s.median / scale, digits)} (${f(s.min / scale, digits)}–${f(s.max / scale, digits)})` : '–');
const med = (s, digits = 1, scale = 1) => (s ? f(s.median / scale, digits) : '–');

export function renderMarkdown(r) {
  const out = [];
  const line = (s = '') => out.push(s);
  line(`# s3-direct benchmark results${r.quick ? ' (quick run)' : ''}`);
  line();
  line(`Taken ${r.date.replace('T', ' ').slice(0, 16)} UTC with \`${r.command}\`.`);
  line();
  line('| machine | |');
  line('|---|---|');
  line(`| CPU | ${r.machine.cpu}, ${r.machine.cores} cores |`);
  line(`| RAM | ${r.machine.ramGiB} GiB |`);
  line(`| OS | ${r.machine.os} |`);
  line(`| load average (1/5/15 min) | at start ${r.machine.loadAverageAtStart.join(' / ')}, at end ${r.machine.loadAverageAtEnd?.join(' / ') ?? '–'} |`);
  line();
  line('| software | version |');
  line('|---|---|');
  const v = r.versions;
  line(`| s3-direct | ${v.s3Direct} (WASM package built from ${v.wasmPackage}${v.wasmBaselinePackage ? `; the baseline client from ${v.wasmBaselinePackage}` : ''}) |`);
  line(`| Chromium | ${v.chromium} (headless, via playwright-core ${v.playwrightCore}) |`);
  line(`| Node.js | ${v.node} |`);
  line(`| Uppy | @uppy/core ${v.uppyCore}, @uppy/aws-s3 ${v.uppyAwsS3}; Uppy 6: @uppy/core ${v.uppy6Core}, @uppy/aws-s3 ${v.uppy6AwsS3} |`);
  line(`| Companion | @uppy/companion ${v.uppyCompanion} |`);
  line(`| Garage | ${v.garage} |`);
  line(`| Rust | ${v.rustc} |`);
  line();
  for (const n of r.notes) line(`> ${n}`);
  if (r.notes.length) line();

  if (r.targets?.length) {
    line('## Targets');
    line();
    line('Throughput targets compare medians; "round by round" is the range of the same ratio taken within each round (every variant runs once per round, one after another), which shows how far one run on this machine can move it.');
    line();
    line('| target | measured | round by round | wanted | met |');
    line('|---|---|---|---|---|');
    for (const t of r.targets) {
      const value = typeof t.value === 'number' ? (Math.abs(t.value) < 10 ? f(t.value, 2) : f(t.value, 1)) : t.value;
      // A ratio without a target is shown for comparison only.
      const want = t.target == null ? 'none' : typeof t.target === 'number' ? `≥ ${t.target}` : t.target;
      const rounds = t.rounds ? `${f(t.rounds[0], 2)}–${f(t.rounds[1], 2)}` : '–';
      line(`| ${t.name} | ${value} | ${rounds} | ${want} | ${t.met == null ? '–' : t.met ? 'yes' : '**no**'} |`);
    }
    line();
  }

  if (r.uploads.length) {
    line('## Browser upload throughput');
    line();
    line(`Headless Chromium on loopback, a fresh file of random bytes per upload, ${r.config.runs} run(s) each: median (min–max). MB/s = 10^6 bytes per second, timed in the page from the call that starts the upload to the end of complete. CPU seconds per process for the whole upload (browser: all Chromium processes; signer: s3-direct or Companion; store: the store process; for the store ceiling, "client" is the native uploader). Peak memory: the page's JS heap (CDP), its WASM memory, and the growth of the whole browser's PSS over its idle level. "first PUT ms": when the first part left for the store, after the call (Resource Timing). Every stored object's SHA-256 is checked against the file's.`);
    line();
    const groups = new Map();
    for (const c of r.uploads) {
      const k = `${c.store}|${c.sizeMiB}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(c);
    }
    for (const [k, cells] of groups) {
      const [store, size] = k.split('|');
      const sizeLabel = Number(size) >= 1024 ? `${Number(size) / 1024} GiB` : `${size} MiB`;
      line(`### ${store === 'garage' ? 'Garage (single node)' : 'embedded store (s3s-fs with its own multipart path)'}, ${sizeLabel}`);
      line();
      line('| client | MB/s | first PUT ms | CPU s browser | CPU s signer | CPU s store | peak JS heap MiB | peak WASM MiB | browser PSS growth MiB | SHA-256 ok |');
      line('|---|---|---|---|---|---|---|---|---|---|');
      for (const c of cells) {
        const browserCpu = c.cpuSeconds.client ? `${med(c.cpuSeconds.client, 2)} (client)` : med(c.cpuSeconds.browser, 2);
        line(`| ${c.label} | ${range(c.mbPerSec)} | ${c.firstPutMs ? range(c.firstPutMs, 0) : '–'} | ${browserCpu} | ${med(c.cpuSeconds.signer, 2)} | ${med(c.cpuSeconds.store, 2)} | ${med(c.peak.jsHeapUsed, 1, MiB)} | ${med(c.peak.wasm, 1, MiB)} | ${med(c.peak.browserPssGrowth, 0, MiB)} | ${c.verified} |`);
      }
      const failed = cells.filter((c) => c.failures.length);
      for (const c of failed) line(`\n- ${c.label}: ${c.failures.length} failed run(s): ${c.failures[0]}`);
      line();
    }
  }

  if (r.signing.length) {
    line('## Signing');
    line();
    line(`${r.config.signingConnections} keep-alive connections from the in-repo load generator (\`s3-direct-bench load\`, one thread) for ${r.config.signingSeconds} s after a 1 s warm-up, on the same machine as the server; no rate limit. ${r.config.signingRounds ?? 1} round(s), each server once per round, the order rotated from round to round (no server always follows the same load); the row is the round with the median requests/s, with the range over the rounds in brackets. "batch" asks for ${r.config.batchParts} part URLs per request. RSS: resident memory of the server process during the load.`);
    line();
    line('| server | request | requests/s | parts signed/s | p50 ms | p99 ms | max ms | non-2xx | server CPU s | RSS MiB |');
    line('|---|---|---|---|---|---|---|---|---|---|');
    for (const s of r.signing) {
      const rps = s.requestsPerSecSummary?.n > 1 ? range(s.requestsPerSecSummary, 0) : f(s.requestsPerSec, 0);
      const p99 = s.p99Summary?.n > 1 ? range(s.p99Summary, 2) : f(s.latencyMs?.p99, 2);
      line(`| ${s.server} | ${s.kind === 'batch' ? `batch of ${s.partsPerRequest}` : 'one part'} | ${rps} | ${f(s.partsPerSec, 0)} | ${f(s.latencyMs?.p50, 2)} | ${p99} | ${f(s.latencyMs?.max, 1)} | ${s.non2xx ?? '–'}${s.errors ? ` (+${s.errors} errors)` : ''} | ${f(s.serverCpuSeconds, 1)} | ${f(s.rssBytes.peakDuringLoad / MiB, 1)} |`);
    }
    line();
  }

  if (r.checksum.length) {
    line('## Checksum throughput in the browser');
    line();
    line(`One ${r.checksum[0].bufferMiB} MiB buffer of random bytes, median of ${r.config.checksumRepeats} after a warm-up. "wasm" is the client's incremental hasher fed 1 MiB at a time, as its Web Worker feeds each part (\`ChecksumStream\`, including the copy into WASM memory); "+simd128" is the same module built with \`-C target-feature=+simd128\`. WebCrypto's SHA-256 is shown for comparison: it is one-shot, so the client does not use it (it would hold each whole part).`);
    line();
    line('| implementation | algorithm | MB/s |');
    line('|---|---|---|');
    for (const c of r.checksum) line(`| ${c.implementation} | ${c.algorithm} | ${f(c.mbPerSec, 0)} |`);
    line();
  }

  if (r.link?.length) {
    line('## Checksum cost on slower links');
    line();
    line(`The s3-direct client with default settings and each part checksum, uploading ${r.link[0].sizeMiB} MiB to the embedded store with the browser's upload rate throttled by Chromium (DevTools network emulation; every request of the page shares the rate), ${r.config.runs} run(s) each: median (min–max). On loopback the browser, the store and the network stack share two cores, so hashing takes CPU the uploads need; a slower link leaves the hasher time to stay ahead of the PUTs. "vs off" is the ratio of the medians at the same rate.`);
    line();
    line('| link | checksum | MB/s | vs off | CPU s browser | SHA-256 ok |');
    line('|---|---|---|---|---|---|');
    for (const c of r.link) {
      const off = r.link.find((o) => o.linkMBps === c.linkMBps && o.checksum === 'off');
      const vs = c.checksum !== 'off' && c.mbPerSec && off?.mbPerSec ? f(c.mbPerSec.median / off.mbPerSec.median, 2) : '';
      line(`| ${c.linkMBps} MB/s (${c.linkMBps * 8} Mbit/s) | ${c.checksum} | ${range(c.mbPerSec)} | ${vs} | ${med(c.cpuSeconds.browser, 2)} | ${c.verified} |`);
    }
    const failed = r.link.filter((c) => c.failures.length);
    for (const c of failed) line(`\n- ${c.linkMBps} MB/s, ${c.checksum}: ${c.failures.length} failed run(s): ${c.failures[0]}`);
    line();
  }

  if (r.wan?.length) {
    line('## Uploads over links with latency');
    line();
    line(`${r.wan[0].sizeMiB} MiB to the embedded store, each client with its default settings, the page's upload rate and latency set by Chromium (DevTools network emulation: every request of the page shares the rate, and each answer is held back by the latency, one round trip per request), ${r.config.runs} run(s) each, interleaved: median (min–max). On loopback a request's round trip costs almost nothing; here each request a client makes per part costs one. "vs s3-direct" is s3-direct's median over the row's.`);
    line();
    line('| link | client | MB/s | vs s3-direct | CPU s browser | CPU s signer | SHA-256 ok |');
    line('|---|---|---|---|---|---|---|');
    for (const c of r.wan) {
      const own = r.wan.find((o) => o.linkMBps === c.linkMBps && o.latencyMs === c.latencyMs && o.variant === 's3d');
      const vs = c.variant !== 's3d' && c.mbPerSec && own?.mbPerSec ? f(own.mbPerSec.median / c.mbPerSec.median, 2) : '';
      line(`| ${c.linkMBps} MB/s (${c.linkMBps * 8} Mbit/s), ${c.latencyMs} ms | ${c.label} | ${range(c.mbPerSec)} | ${vs} | ${med(c.cpuSeconds.browser, 2)} | ${med(c.cpuSeconds.signer, 2)} | ${c.verified} |`);
    }
    const failed = r.wan.filter((c) => c.failures.length);
    for (const c of failed) line(`\n- ${c.linkMBps} MB/s, ${c.latencyMs} ms, ${c.label}: ${c.failures.length} failed run(s): ${c.failures[0]}`);
    line();
  }

  if (r.memory.length) {
    line('## Memory bound');
    line();
    line(`s3-direct client with default settings uploading one file to the embedded store; the bound is parts in flight × part size + ${r.config.memoryConstantMiB} MiB, compared with the peak growth of the whole browser's PSS (all Chromium processes, page and Web Worker included) over its idle level.`);
    line();
    line('| file | checksum | MB/s | bound MiB | browser PSS growth MiB | peak JS heap MiB | peak WASM MiB | within bound | SHA-256 ok |');
    line('|---|---|---|---|---|---|---|---|---|');
    for (const m of r.memory) {
      if (!m.ok) {
        line(`| ${m.fileMiB / 1024} GiB | ${m.checksum} | failed: ${m.error} | | | | | | |`);
        continue;
      }
      line(`| ${m.fileMiB / 1024} GiB | ${m.checksum} | ${f(m.mbPerSec)} | ${f(m.boundBytes / MiB, 0)} | ${f(m.peak.browserPssGrowth / MiB, 0)} | ${f(m.peak.jsHeapUsed / MiB, 1)} | ${f(m.peak.wasm / MiB, 1)} | ${m.withinBound ? 'yes' : '**no**'} | ${m.verified ? 'yes' : '**no**'} |`);
    }
    line();
  }
  if (r.engines?.length) renderEngines(r, line);
  if (r.ready?.length) renderReady(r, line);
  if (r.stalls?.length) renderStalls(r, line);
  return `${out.join('\n')}\n`;
}

/** The stall section: per engine and scenario, the upload time, the re-sent PUTs, the re-send delay. */
function renderStalls(r, line) {
  line('## Stalls');
  line();
  line("Default settings (the adaptive stall timeout), embedded store, the part size the client picks. \"re-sent\": part PUTs beyond one per part, counted at the fault proxy; a clean upload should have none. The held part's body stops after its first MiB and is released after 60 s; \"re-sent after\": from the held PUT's start to the part's next PUT.");
  line();
  line('| engine | scenario | upload s | re-sent | re-sent after | SHA-256 ok |');
  line('|---|---|---|---|---|---|');
  for (const c of r.stalls) {
    if (!c.ok) {
      line(`| ${c.engine} | ${c.label} | failed: ${c.detail} | | | |`);
      continue;
    }
    line(`| ${c.engine} | ${c.label} | ${c.seconds.toFixed(1)} | ${c.resent} | ${c.resendMs == null ? '–' : `${(c.resendMs / 1000).toFixed(1)} s`} | ${c.verified ? 'yes' : '**no**'} |`);
  }
  line();
}

/** The engine section: each engine's two pages side by side, per size. */
function renderEngines(r, line) {
  line('## Browser engines');
  line();
  line("Embedded store, loopback, default settings: s3-direct's page and the browser ceiling page (bare XHR, the default's part size × 6) on the same engine, one after the other. Browser PSS: the peak of the summed PSS of every process the engine started (for WebKit the tree of WebKitWebDriver: the MiniBrowser with its web and network processes), sampled every 200 ms, over its level once the page had loaded and the file was chosen; in parentheses the growth of its anonymous and shared-memory part (heaps and buffers, not mapped files).");
  line();
  line('| engine | file | page | MB/s (median, min–max) | s3-direct / ceiling | browser CPU s (by process, last run) | browser PSS growth MiB (anonymous) | SHA-256 ok |');
  line('|---|---|---|---|---|---|---|---|');
  for (const c of r.engines) {
    const ceiling = r.engines.find((o) => o.engine === c.engine && o.sizeMiB === c.sizeMiB && o.variant === 'ceiling');
    const vs = c.variant === 's3d' && c.mbPerSec && ceiling?.mbPerSec ? f(c.mbPerSec.median / ceiling.mbPerSec.median, 2) : '';
    const size = c.sizeMiB >= 1024 ? `${c.sizeMiB / 1024} GiB` : `${c.sizeMiB} MiB`;
    const byProcess = Object.entries(c.byProcess ?? {}).slice(0, 3).map(([comm, sec]) => `${comm} ${f(sec)}`).join(', ');
    line(`| ${c.version} | ${size} | ${c.label} | ${range(c.mbPerSec)} | ${vs} | ${med(c.browserCpu, 1)}${byProcess ? ` (${byProcess})` : ''} | ${med(c.browserPssGrowth, 0, MiB)}${c.browserAnonPssGrowth ? ` (${med(c.browserAnonPssGrowth, 0, MiB)})` : ''} | ${c.verified} |`);
  }
  for (const c of r.engines.filter((x) => x.failures.length)) line(`\n- ${c.engine}, ${c.sizeMiB} MiB, ${c.variant}: ${c.failures.length} failed run(s): ${c.failures[0]}`);
  line();
}

/** Bytes as a median, with the range when the loads differed. */
const bytes = (s) => (s ? (s.min === s.max ? f(s.median, 0) : range(s, 0)) : '–');

/** The time-to-ready section: what each client loads, then per engine cold and cached loads. */
function renderReady(r, line) {
  line('## Time to ready');
  line();
  line(`From the page asking for the client's code (\`import()\` of s3-direct's glue, then \`init()\`; the \`import()\` of Uppy 5's bundle) to a constructed uploader (\`new Uploader({ endpoint })\`; \`new Uppy().use(AwsS3, …)\`), timed in the page. ${r.config.readyRounds} rounds per engine and setup, each in a fresh profile (Chromium: a new browser context; Firefox: a new user context; WebKit: a new WebDriver session and MiniBrowser): a cold load, then two more as new navigations in the same tab (the page's query string changes, its files' URLs do not), ${r.config.readyPauseMs} ms apart: median (min–max). Bytes: what the server sent for the client's files (status lines, headers and bodies, counted on its sockets), and the sum of Resource Timing's \`transferSize\` as the engine reports it.`);
  line();
  if (r.readySizes?.length) {
    line('| what | bytes | gzip -9 |');
    line('|---|---|---|');
    for (const s of r.readySizes) {
      const b = (x) => (s.total ? `**${x.toLocaleString('en-US')}**` : x.toLocaleString('en-US'));
      line(`| ${s.total ? `**${s.what}**` : s.what} | ${b(s.raw)} | ${b(s.gzip)} |`);
    }
    line();
  }
  const servedBy = [...new Map(r.ready.map((c) => [c.serving, c.servingLabel])).entries()];
  line(`Served by: ${servedBy.map(([id, label]) => `"${id}": ${label}`).join('; ')}.`);
  line();
  for (const engine of [...new Set(r.ready.map((c) => c.engine))]) {
    const cells = r.ready.filter((c) => c.engine === engine);
    line(`### ${cells[0].version}`);
    line();
    line('| client | served | load | ms to ready | of which import() | of which init() | init() after the module arrived | server bytes (statuses, all loads) | transferSize | loads |');
    line('|---|---|---|---|---|---|---|---|---|---|');
    for (const c of cells) {
      line(`| ${c.client} | ${c.serving} | ${c.visit} | ${range(c.ms)} | ${range(c.importMs)} | ${c.initMs ? range(c.initMs) : '–'} | ${c.afterWasmArrivedMs ? range(c.afterWasmArrivedMs) : '–'} | ${bytes(c.serverBytes)} (${c.serverStatuses}) | ${bytes(c.transferSize)} | ${c.n} |`);
    }
    for (const c of cells.filter((x) => x.failures.length)) line(`\n- ${c.client}, ${c.serving}, ${c.visit}: ${c.failures.length} failed load(s): ${c.failures[0]}`);
    line();
  }
}
