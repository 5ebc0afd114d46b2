// What every bench page reports beside its time: when its first part left for the store.

/**
 * Milliseconds from `started` (a `performance.now()` reading at the call) to the first request
 * the page sent to another origin than its own — the store, where only part (or form) uploads
 * go — from Resource Timing; null when none is recorded.
 */
export function firstPutMs(started) {
  const own = location.origin;
  const starts = performance.getEntriesByType('resource')
    .filter((e) => !e.name.startsWith(own) && e.startTime >= started)
    .map((e) => e.startTime - started);
  return starts.length ? Math.min(...starts) : null;
}
