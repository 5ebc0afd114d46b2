// The checksum worker of s3-direct: hashes parts with the package's checksum module
// (s3_direct_checksum.js and its .wasm), which holds the hashers alone, so that a page loads
// hashing code only when it checksums. The page's module starts it as a module worker
// (`new Worker(new URL(...checksum-worker.js, import.meta.url), { type: 'module' })`, the pattern
// bundlers recognise); where no worker can start, the page imports it and calls hashPart itself.
// Not part of the documented API.
import init, { ChecksumStream, compositeChecksum } from './s3_direct_checksum.js';

// Bytes read from the file at a time, into a buffer reused from part to part.
const CHUNK_BYTES = 1 << 20;

let ready;
const load = () => (ready ??= init());

// Buffers not in use, kept so that hashing allocates nothing per part.
const spareChunks = [];

// A BYOB reader (reads land in our buffer), or null where blob streams are not byte streams.
function byobReader(stream) {
  try {
    return stream.getReader({ mode: 'byob' });
  } catch {
    return null;
  }
}

// Calls use(bytes) for each piece of blob[start, end) in order; bytes are valid only during the
// call (they are the reused buffer). `blob` may instead be a stream's part, a Uint8Array of its
// bytes (all of them: start and end span it whole), fed at most CHUNK_BYTES at a time so that the
// module's memory does not grow with the part.
async function readChunks(blob, start, end, use) {
  if (blob instanceof Uint8Array) {
    for (let at = 0; at < blob.length; at += CHUNK_BYTES) use(blob.subarray(at, at + CHUNK_BYTES));
    return;
  }
  const stream = blob.slice(start, end).stream();
  const reader = byobReader(stream);
  if (!reader) {
    const plain = stream.getReader();
    for (;;) {
      const { done, value } = await plain.read();
      if (done) return;
      use(value);
    }
  }
  let buffer = spareChunks.pop() ?? new ArrayBuffer(CHUNK_BYTES);
  try {
    for (;;) {
      // A read transfers the buffer; the answer's view is on the same memory.
      const { done, value } = await reader.read(new Uint8Array(buffer));
      if (value) buffer = value.buffer;
      if (done) return;
      use(value);
    }
  } finally {
    // A failed read leaves it detached (byteLength 0): then it is simply dropped.
    if (buffer.byteLength === CHUNK_BYTES) spareChunks.push(buffer);
  }
}

/** The base64 checksum of blob[start, end), read chunk by chunk into the incremental hasher. */
export async function hashPart(blob, start, end, algorithm) {
  await load();
  const hasher = new ChecksumStream(algorithm);
  try {
    await readChunks(blob, start, end, (bytes) => hasher.update(bytes));
  } catch (err) {
    hasher.free();
    // A file changed, moved or deleted since it was chosen cannot be read, and browsers word that
    // oddly (Chromium: a TypeError "network error"): say what failed, with the error's own name
    // where it has a telling one (NotReadableError, NotFoundError).
    const name = err && err.name && err.name !== 'TypeError' && err.name !== 'Error' ? ` (${err.name})` : '';
    throw new Error(`the browser refused to read bytes ${start}–${end}${name}`);
  }
  return hasher.finish();
}

/** S3's composite checksum (base64) of the parts' base64 checksums `sums`. */
export async function composite(algorithm, sums) {
  await load();
  return compositeChecksum(algorithm, sums);
}

if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope) {
  self.onmessage = async (e) => {
    const { id, blob, start, end, algorithm, sums } = e.data;
    // A stream part's bytes were transferred here: they go back with the answer, transferred.
    const bytes = blob instanceof Uint8Array ? blob : undefined;
    const back = bytes ? [bytes.buffer] : [];
    try {
      const sum = sums ? await composite(algorithm, sums) : await hashPart(blob, start, end, algorithm);
      self.postMessage({ id, sum, bytes }, back);
    } catch (err) {
      self.postMessage({ id, error: String((err && err.message) || err), bytes }, back);
    }
  };
}
