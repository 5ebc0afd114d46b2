// The stall section: how soon a stalled part is re-sent, and that clean uploads on slow links
// re-send nothing, with default settings, on each browser engine (the adaptive stall timeout of
// wasm-client/src/engine/stall.rs). Embedded store; part PUTs pass through the test suite's
// fault proxy (tests/lib/proxy.mjs), which throttles each PUT or holds one part's body; Chromium
// also runs under its own network emulation (a shared upload rate and a latency per request).
//
// Rows: upload time, part PUTs beyond one per part ("re-sent"), and for the stall scenario how
// long after the stalled PUT began the part was sent again. Nothing here fails the run.

const testsLib = (name) => new URL(`../../tests/lib/${name}`, import.meta.url);

/** The scenarios: a held part on a fast link, then clean uploads on slow ones. */
function scenarios(engine) {
  const list = [
    { id: 'stall-60s', label: '256 MiB, one part held 60 s after its first MiB (loopback)', sizeMiB: 256, hold: 9 },
    { id: 'proxy-1MBps', label: '64 MiB, each PUT throttled to 1 MB/s by the proxy', sizeMiB: 64, throttle: 1e6 },
    { id: 'proxy-167KBps', label: '32 MiB, each PUT throttled to 166,667 B/s by the proxy', sizeMiB: 32, throttle: 166_667 },
  ];
  if (engine === 'chromium') {
    list.push(
      { id: 'emulated-12.5MBps-80ms', label: '256 MiB, Chromium emulation 12.5 MB/s, 80 ms', sizeMiB: 256, link: { mbps: 12.5, latencyMs: 80 } },
      { id: 'emulated-1MBps', label: '64 MiB, Chromium emulation 1 MB/s', sizeMiB: 64, link: { mbps: 1, latencyMs: 0 } },
    );
  }
  return list;
}

/** Part PUTs beyond one per part in `log`. */
function resent(log) {
  const perPart = new Map();
  for (const e of log) perPart.set(e.part, (perPart.get(e.part) ?? 0) + 1);
  return [...perPart.values()].reduce((sum, n) => sum + n - 1, 0);
}

export async function stallSection(results, dir, ctx) {
  const { config, log, randomFile, MiB, verifyAndDelete, bin, pkgDir } = ctx;
  process.env.S3_DIRECT_BIN ??= bin;
  const [{ launchEngine, openDemoPage, waitForDemoRow }, { startProxy }, { startServer, embeddedCredentials }, { launchBrowser, openDemo, waitForRow }, { s3Client }] = await Promise.all(
    ['engines.mjs', 'proxy.mjs', 'server.mjs', 'browser.mjs', 's3.mjs'].map((n) => import(testsLib(n))),
  );
  const proxy = await startProxy();
  const server = await startServer({ args: ['--public-endpoint', proxy.url], pkgDir });
  proxy.setTarget(server.storeEndpoint);
  const client = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  try {
    for (const name of config.engines) {
      let engine;
      let chromium;
      try {
        // Chromium through playwright directly, for its network emulation (CDP).
        if (name === 'chromium') chromium = await launchBrowser();
        else engine = await launchEngine(name);
      } catch (err) {
        results.notes.push(`stalls: ${name} could not start: ${err.message}`);
        continue;
      }
      try {
        for (const s of scenarios(name)) {
          const file = await randomFile(dir, `stall-${name}-${s.id}.bin`, s.sizeMiB * MiB);
          const from = proxy.log.length;
          let held = false;
          let release;
          proxy.throttle = s.throttle ?? 0;
          proxy.decide = ({ part }) => {
            if (part !== s.hold || held) return undefined;
            held = true;
            release = setTimeout(() => proxy.dropHeld(), 60_000);
            return { stallAfter: MiB };
          };
          const started = Date.now();
          let row;
          let page;
          try {
            if (chromium) {
              page = await openDemo(chromium, server.url, {});
              if (s.link) {
                const cdp = await page.context().newCDPSession(page);
                await cdp.send('Network.enable');
                await cdp.send('Network.emulateNetworkConditions', {
                  offline: false, latency: s.link.latencyMs, downloadThroughput: -1, uploadThroughput: s.link.mbps * 1e6,
                });
              }
              await page.setInputFiles('#picker', file.path);
              row = await waitForRow(page, file.name, { timeout: 900_000 });
            } else {
              page = await openDemoPage(engine, server.url, {});
              await page.setFiles('#picker', [file.path]);
              row = await waitForDemoRow(page, file.name, { timeout: 900_000 });
            }
            const seconds = (Date.now() - started) / 1000;
            const puts = proxy.log.slice(from);
            const holdPuts = puts.filter((e) => e.part === s.hold);
            const resendMs = holdPuts.length >= 2 ? holdPuts[1].at - holdPuts[0].at : null;
            const verified = row.state === 'done' && await verifyAndDelete(client, 's3-direct', row.key, file);
            const r = {
              engine: name, scenario: s.id, label: s.label, sizeMiB: s.sizeMiB, ok: row.state === 'done',
              seconds, puts: puts.length, resent: resent(puts), resendMs, verified, detail: row.state === 'done' ? null : row.detail,
            };
            results.stalls.push(r);
            log(`stalls ${name} ${s.id}: ${r.ok ? 'done' : `failed (${r.detail})`} in ${seconds.toFixed(1)} s, re-sent ${r.resent}${resendMs != null ? `, the held part after ${resendMs} ms` : ''}`);
          } catch (err) {
            results.stalls.push({ engine: name, scenario: s.id, label: s.label, sizeMiB: s.sizeMiB, ok: false, detail: err.message.split('\n')[0].slice(0, 300) });
            log(`stalls ${name} ${s.id} failed: ${err.message}`);
          } finally {
            clearTimeout(release);
            proxy.throttle = 0;
            proxy.decide = () => undefined;
            proxy.dropHeld();
            await page?.close().catch(() => {});
            await file.remove();
          }
        }
      } finally {
        await chromium?.close().catch(() => {});
        await engine?.close().catch(() => {});
      }
    }
  } finally {
    await server.stop();
    await proxy.stop();
  }
}
