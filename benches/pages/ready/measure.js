// What both time-to-ready pages report once their uploader is ready: the times taken in the page
// and what Resource Timing says of the client's files (an engine that does not report a size
// gives null).

/** The client's files: the WASM package under /pkg/, or Uppy's bundle. */
const isClientFile = (pathname) => pathname.startsWith('/pkg/') || pathname.endsWith('/uppy-ready.js');

/** Sets `window.readyResult` from the marks (performance.now() readings, first one the start). */
function report(marks) {
  const names = Object.keys(marks);
  const ms = {};
  for (let i = 1; i < names.length; i += 1) ms[names[i]] = marks[names[i]] - marks[names[i - 1]];
  ms.total = marks[names.at(-1)] - marks[names[0]];
  const size = (e, field) => (typeof e[field] === 'number' ? e[field] : null);
  const resources = performance.getEntriesByType('resource')
    .map((e) => ({ e, pathname: new URL(e.name).pathname }))
    .filter(({ pathname }) => isClientFile(pathname))
    .map(({ e, pathname }) => ({
      path: pathname,
      transferSize: size(e, 'transferSize'),
      encodedBodySize: size(e, 'encodedBodySize'),
      decodedBodySize: size(e, 'decodedBodySize'),
      startTime: e.startTime,
      responseEnd: e.responseEnd,
    }));
  window.readyResult = { marks, ms, resources };
}

/**
 * Runs `steps` (name → function, awaited) one after another, marking the time after each, and
 * reports; or reports the error that stopped them.
 */
export async function measure(steps) {
  const marks = { start: performance.now() };
  try {
    for (const [name, step] of Object.entries(steps)) {
      await step();
      marks[name] = performance.now();
    }
    report(marks);
  } catch (err) {
    window.readyResult = { error: String(err?.message ?? err) };
  }
}
