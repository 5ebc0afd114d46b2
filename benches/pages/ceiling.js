// The browser ceiling: what the browser itself allows. One create, one batch that signs every part,
// `Blob.slice` parts PUT with XMLHttpRequest by `concurrency` workers, one complete — nothing else
// (no progress, retries, checksums or resume records).
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

window.bench = {
  wasmMemory: () => 0,
  async run({ partSize, concurrency }) {
    const file = document.querySelector('#picker').files[0];
    const started = performance.now();
    const created = await json(await fetch('/s3/multipart', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        filename: file.name, type: 'application/octet-stream', metadata: {}, size: file.size, partSize,
      }),
    }));
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
        etags[i] = await put(signed.presignedUrls[i + 1], headers,
          file.slice(i * partSize, Math.min(file.size, (i + 1) * partSize)));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await json(await fetch(`/s3/multipart/${id}/complete?${new URLSearchParams({ key: created.key })}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ parts: etags.map((ETag, i) => ({ PartNumber: i + 1, ETag })) }),
    }));
    return { seconds: (performance.now() - started) / 1000, key: created.key };
  },
};
document.body.dataset.ready = 'true';
