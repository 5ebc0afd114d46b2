// Checksum throughput in the browser: the client's incremental hasher (ChecksumStream, in the
// package's checksum module: what its Web Worker feeds each part to, 1 MiB at a time; it
// includes copying the bytes into WASM memory) built without and with SIMD (+simd128), against WebCrypto's SHA-256 (native, but one-shot: the
// worker would need each whole part in memory, so it does not use it).
const variants = { wasm: '/pkg/s3_direct_checksum.js', 'wasm+simd128': './pkg-simd/s3_direct_checksum.js' };

// The worker's read size.
const CHUNK = 1 << 20;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function time(fn, repeats) {
  await fn(); // warm-up (compilation, first memory growth)
  const seconds = [];
  for (let i = 0; i < repeats; i += 1) {
    const t = performance.now();
    await fn();
    seconds.push((performance.now() - t) / 1000);
  }
  return median(seconds);
}

window.bench = {
  wasmMemory: () => 0,
  async run({ sizeMiB = 64, repeats = 3, algorithms = ['crc32c', 'crc32', 'md5', 'sha256'] }) {
    const bytes = new Uint8Array(sizeMiB * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
    const rows = [];
    for (const [variant, url] of Object.entries(variants)) {
      const mod = await import(new URL(url, location.href).href);
      await mod.default();
      for (const algorithm of algorithms) {
        const s = await time(() => {
          const hasher = new mod.ChecksumStream(algorithm);
          for (let at = 0; at < bytes.length; at += CHUNK) hasher.update(bytes.subarray(at, at + CHUNK));
          return hasher.finish();
        }, repeats);
        rows.push({ implementation: variant, algorithm, mbPerSec: bytes.length / 1e6 / s });
      }
    }
    const s = await time(() => crypto.subtle.digest('SHA-256', bytes), repeats);
    rows.push({ implementation: 'WebCrypto', algorithm: 'sha256', mbPerSec: bytes.length / 1e6 / s });
    return rows;
  },
};
document.body.dataset.ready = 'true';
