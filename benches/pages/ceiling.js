// The browser ceiling: what the browser itself allows. One create, one batch that signs every part,
// `Blob.slice` parts PUT with XMLHttpRequest by `concurrency` workers, one complete — nothing else
// (no progress, retries, checksums or resume records).
//
// With `checksum` (an algorithm of the client's), the least a checksummed upload has to do on
// top: the upload is created with the algorithm, a Web Worker (ceiling-hash-worker.js) hashes
// each part with the client's hasher, `concurrency` parts ahead of the PUTs, each part is signed
// with its checksum once hashed (one signing call per part), PUT with it, and completion names
// the parts' checksums.
import { firstPutMs } from './timing.js';

const json = async (res) => {
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
  return res.json();
};

function put(url, headers, body) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [k, v] of Object.entries(headers)) {
      if (k !== 'content-length' && k !== 'host') xhr.setRequestHeader(k, v);
    }
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
      ? resolve(xhr.getResponseHeader('ETag'))
      : reject(new Error(`PUT ${xhr.status}: ${xhr.responseText}`)));
    xhr.onerror = () => reject(new Error('PUT failed'));
    xhr.send(body);
  });
}

/** Creates the multipart upload of `file` (with `extra` fields, e.g. its checksum algorithm). */
async function create(file, partSize, extra = {}) {
  return json(await fetch('/s3/multipart', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      filename: file.name, type: 'application/octet-stream', metadata: {}, size: file.size, partSize, ...extra,
    }),
  }));
}

/** Completes the upload `created` with `parts` ({ PartNumber, ETag, … }). */
async function complete(created, parts) {
  const id = encodeURIComponent(created.uploadId);
  await json(await fetch(`/s3/multipart/${id}/complete?${new URLSearchParams({ key: created.key })}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ parts }),
  }));
}

/** Part i (from 0) of `file`. */
const slice = (file, partSize, i) => file.slice(i * partSize, Math.min(file.size, (i + 1) * partSize));

/** S3's name of an algorithm's checksum in a completion's parts. */
const completionField = { crc32: 'ChecksumCRC32', crc32c: 'ChecksumCRC32C', sha256: 'ChecksumSHA256' };

/** Hashes parts of `file` in a Web Worker: `sum(i)` is part i's checksum, asked for once. */
function hasher(file, partSize, algorithm) {
  const worker = new Worker('./ceiling-hash-worker.js', { type: 'module' });
  const waiting = new Map();
  const sums = new Map();
  worker.onmessage = ({ data }) => {
    const p = waiting.get(data.id);
    waiting.delete(data.id);
    if (data.error) p.reject(new Error(data.error));
    else p.resolve(data.sum);
  };
  return {
    sum(i) {
      if (!sums.has(i)) {
        sums.set(i, new Promise((resolve, reject) => {
          waiting.set(i, { resolve, reject });
          worker.postMessage({ id: i, blob: slice(file, partSize, i), algorithm });
        }));
      }
      return sums.get(i);
    },
    close: () => worker.terminate(),
  };
}

window.bench = {
  wasmMemory: () => 0,
  async run({ partSize, concurrency, checksum }) {
    if (checksum) return checksummed({ partSize, concurrency, checksum });
    const file = document.querySelector('#picker').files[0];
    const started = performance.now();
    const created = await create(file, partSize);
    const id = encodeURIComponent(created.uploadId);
    const count = Math.ceil(file.size / partSize);
    const numbers = Array.from({ length: count }, (_, i) => i + 1);
    const query = new URLSearchParams({ key: created.key, partNumbers: numbers.join(',') });
    const signed = await json(await fetch(`/s3/multipart/${id}/batch?${query}`));
    const etags = new Array(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const headers = { ...signed.headers, ...(signed.partHeaders?.[i + 1] ?? {}) };
        etags[i] = await put(signed.presignedUrls[i + 1], headers, slice(file, partSize, i));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await complete(created, etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })));
    return { seconds: (performance.now() - started) / 1000, key: created.key, firstPutMs: firstPutMs(started) };
  },
};
document.body.dataset.ready = 'true';

/** The ceiling with part checksums (see the top of this file). */
async function checksummed({ partSize, concurrency, checksum }) {
  const file = document.querySelector('#picker').files[0];
  const started = performance.now();
  const count = Math.ceil(file.size / partSize);
  const hashes = hasher(file, partSize, checksum);
  // The first parts are hashed while the upload is created.
  for (let i = 0; i < Math.min(count, concurrency); i += 1) hashes.sum(i);
  const created = await create(file, partSize, { checksum });
  const id = encodeURIComponent(created.uploadId);
  const parts = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      if (i + concurrency < count) hashes.sum(i + concurrency);
      const sum = await hashes.sum(i);
      const query = new URLSearchParams({ key: created.key, partNumbers: String(i + 1), checksums: `${i + 1}:${checksum}:${sum}` });
      const signed = await json(await fetch(`/s3/multipart/${id}/batch?${query}`));
      const headers = { ...signed.headers, ...(signed.partHeaders?.[i + 1] ?? {}) };
      const ETag = await put(signed.presignedUrls[i + 1], headers, slice(file, partSize, i));
      parts[i] = { PartNumber: i + 1, ETag, ...(completionField[checksum] ? { [completionField[checksum]]: sum } : {}) };
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    hashes.close();
  }
  await complete(created, parts);
  return { seconds: (performance.now() - started) / 1000, key: created.key, firstPutMs: firstPutMs(started) };
}
