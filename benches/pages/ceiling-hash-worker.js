// The checksummed browser ceiling's Web Worker: hashes the parts it is sent with the client's
// incremental hasher (ChecksumStream from the package's checksum module), reading each part
// through a BYOB reader into one reused 1 MiB buffer: the cheapest way found to read a file in
// Chromium (BENCHMARKS.md). Requests are answered in the order they come.
import init, { ChecksumStream } from '/pkg/s3_direct_checksum.js';

const ready = init();
let buffer = new ArrayBuffer(1 << 20);

async function hash(blob, algorithm) {
  await ready;
  const hasher = new ChecksumStream(algorithm);
  const reader = blob.stream().getReader({ mode: 'byob' });
  for (;;) {
    const { done, value } = await reader.read(new Uint8Array(buffer));
    if (value) buffer = value.buffer;
    if (done) break;
    hasher.update(value);
  }
  return hasher.finish();
}

let queue = Promise.resolve();
self.onmessage = (e) => {
  const { id, blob, algorithm } = e.data;
  queue = queue.then(() => hash(blob, algorithm))
    .then((sum) => self.postMessage({ id, sum }), (err) => self.postMessage({ id, error: String(err) }));
};
