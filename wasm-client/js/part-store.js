// s3-direct's part store: a stream's cut parts kept in files of the origin-private file system
// (OPFS), so that each PUT sends a disk-backed `File` rather than a `Blob` of bytes. A Blob's
// bytes stay in the browser's blob storage until the page's garbage collector frees the Blob,
// which a page cannot hasten: in Chromium that held about 190 MiB of a 1 GiB stream's parts in the
// browser process, whatever the stream's length; with the parts in files, the whole upload grew it
// by about 30 MiB (src/web/stream.rs; BENCHMARKS.md, "Memory of a stream"). Not part of the
// documented API.
//
// One file serves both sides. Imported by the page's module at a stream's first part, `open()`
// starts this file again as a dedicated module worker, the one place where OPFS offers
// `createSyncAccessHandle()` (a write with no stream to commit and no copy into blob storage).
// Each upload gets a folder of its own under `s3-direct-parts/`, held with a Web Lock for as long
// as the page keeps the upload, and one file per slot: a slot is rewritten only once its part has
// been released (the store has it), because a `File` taken from a file fails to read once the
// file changes. `close()` removes the folder; a folder whose page crashed is removed by the next
// page that opens a store (its lock is free).
//
// Messages to the worker: `{ n, dir, slot, bytes }`, answered `{ n, file, bytes }` or
// `{ n, error, bytes }` (the part's bytes go to the worker and come back), and `{ n, dir, remove:
// true }`, which removes the folder `dir`.
const ROOT = 's3-direct-parts';
const lockName = (dir) => `${ROOT}:${dir}`;

const folder = async (dir) =>
  (await (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create: true }))
    .getDirectoryHandle(dir, { create: true });

// The worker handles one message at a time, in order, so that a folder is removed only after
// every write asked before.
async function handle({ n, dir, slot, bytes, remove }) {
  try {
    if (remove) {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT);
      await root.removeEntry(dir, { recursive: true });
      self.postMessage({ n });
      return;
    }
    const entry = await (await folder(dir)).getFileHandle(`${slot}`, { create: true });
    const access = await entry.createSyncAccessHandle();
    try {
      access.truncate(0);
      // write() may write less than asked (a full disk throws instead, in current browsers).
      for (let at = 0; at < bytes.byteLength;) {
        const wrote = access.write(bytes.subarray(at), { at });
        if (wrote <= 0) throw new Error(`the part file took no bytes at offset ${at}`);
        at += wrote;
      }
    } finally {
      access.close();
    }
    self.postMessage({ n, file: await entry.getFile(), bytes }, [bytes.buffer]);
  } catch (e) {
    self.postMessage({ n, error: `${e.name}: ${e.message}`, bytes }, bytes ? [bytes.buffer] : []);
  }
}

if (typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope) {
  let done = Promise.resolve();
  self.onmessage = ({ data }) => {
    done = done.then(() => handle(data));
  };
}

/** Removes the folders of part stores whose pages are gone (their locks are free). */
async function sweep() {
  const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(ROOT, { create: true });
  for await (const name of root.keys()) {
    await navigator.locks.request(lockName(name), { ifAvailable: true }, (lock) =>
      lock && root.removeEntry(name, { recursive: true }));
  }
}

/**
 * A part store for one upload, or null where the browser has no OPFS, Web Locks or module
 * workers. `put` never fails: where the worker cannot write (no sync access handles, a full disk,
 * a script that did not load), it answers the bytes alone, then and for every later part, and
 * the caller keeps them in memory.
 */
export async function open() {
  if (!navigator.storage?.getDirectory || !navigator.locks || typeof Worker === 'undefined') return null;
  const dir = crypto.randomUUID();
  let unlock;
  await new Promise((locked, failed) => {
    navigator.locks
      .request(lockName(dir), () => {
        locked();
        return new Promise((resolve) => { unlock = resolve; });
      })
      .catch(failed);
  });
  sweep().catch(() => {});
  const worker = new Worker(new URL('./part-store.js', import.meta.url), {
    type: 'module',
    name: 's3-direct-parts',
  });
  const pending = new Map();
  let n = 0;
  let answered = false;
  let broken = false;
  const ask = (message, transfer) =>
    new Promise((resolve, reject) => {
      pending.set(++n, { resolve, reject });
      worker.postMessage({ n, dir, ...message }, transfer);
    });
  worker.onmessage = ({ data }) => {
    answered = true;
    const p = pending.get(data.n);
    pending.delete(data.n);
    if (data.error === undefined) p?.resolve(data);
    else p?.reject(Object.assign(new Error(data.error), { bytes: data.bytes }));
  };
  worker.onerror = (e) => {
    e.preventDefault();
    for (const p of pending.values()) p.reject(new Error(`the part store's worker failed: ${e.message ?? ''}`));
    pending.clear();
  };
  const free = [];
  let slots = 0;
  let closed = false;
  return {
    /**
     * Writes `bytes` to a free slot: answers `{ file, slot, bytes }`, the bytes given back, or
     * `{ bytes }` alone where the part stays in memory (empty if a failing worker took them).
     */
    async put(bytes) {
      if (broken || closed) return { bytes };
      const slot = free.pop() ?? slots++;
      // Transferred once the worker has answered; copied before, in case its script never loads.
      const transfer = answered;
      try {
        const { file, bytes: back } = await ask({ slot, bytes }, transfer ? [bytes.buffer] : []);
        return { file, slot, bytes: transfer ? back : bytes };
      } catch (e) {
        broken = true;
        console.warn('s3-direct: the part store failed, keeping stream parts in memory:', e.message);
        return { bytes: transfer ? e.bytes : bytes };
      }
    },
    /** The part in `slot` was stored: its file may be rewritten. */
    release(slot) {
      free.push(slot);
    },
    /** Removes the upload's files and ends the worker. */
    close() {
      if (closed) return;
      closed = true;
      ask({ remove: true }, [])
        .catch(() => {})
        .finally(() => {
          worker.terminate();
          unlock();
        });
    },
  };
}
