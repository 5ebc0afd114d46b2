// s3-direct/spool: uploads of a stream (a recording, say) that survive a reload or a crash.
//
// `uploadSpooled(uploader, stream, options)` reads the stream, writing each chunk to a spool file
// in the origin private file system (OPFS) and flushing it, and `uploader.upload` reads the spool
// back as it asks for bytes, so whatever the upload has sent is on disk, and memory holds only
// what the upload is sending however far it falls behind. The upload carries the spool's
// resume key, so the client keeps a resume record for it as for a file; the spool is removed when
// the upload completes or is cancelled. After a reload, `spooledUploads()` lists the spools an
// earlier page left, and `resume(uploader)` uploads the spool file under the same resume key:
// the client finds the record and sends only the parts the store lacks.
//
// Kept out of the page's wasm module (plain JS, loaded only by pages that import it). Writes go
// through a dedicated worker (spool-worker.js): only there can OPFS flush each write durably.
//
//   import init, { Uploader } from 's3-direct';
//   import { uploadSpooled, spooledUploads } from 's3-direct/spool';
const DIR = 's3-direct-spool';
const data = (id) => `${id}.bin`;
const sidecar = (id) => `${id}.json`;

const LOCK = 's3-direct-spool:';

/**
 * Holds spool `id` (a Web Lock) until the returned function is called; null while this or another
 * page holds it. A spool being written or uploaded is held, so no other tab lists or resumes it
 * meanwhile; a lock goes with its page, so a reload or a crash frees the spool.
 */
function hold(id) {
  if (!navigator.locks) return Promise.resolve(() => {});
  return new Promise((resolve, reject) => {
    navigator.locks.request(LOCK + id, { ifAvailable: true }, (lock) => {
      if (!lock) {
        resolve(null);
        return undefined;
      }
      return new Promise((release) => { resolve(release); });
    }).catch(reject);
  });
}

/** The ids of the spools some page of this origin holds. */
async function held() {
  const { held: locks = [] } = (await navigator.locks?.query()) ?? {};
  return new Set(locks.map((l) => l.name).filter((n) => n.startsWith(LOCK)).map((n) => n.slice(LOCK.length)));
}

/** The resume key an upload of spool `id` carries (the client's `resumeKey` option). */
export function spoolResumeKey(id) {
  return `spool:${id}`;
}

function checkId(id) {
  if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,100}$/.test(id)) {
    throw new TypeError(`a spool id is 1 to 100 letters, digits, '-' or '_'; got ${JSON.stringify(id)}`);
  }
}

async function folder(create) {
  const root = await navigator.storage.getDirectory();
  try {
    return await root.getDirectoryHandle(DIR, { create });
  } catch (e) {
    if (e.name === 'NotFoundError') return null;
    throw e;
  }
}

/** Bytes in spool `id`'s file; 0 when it has none. */
async function bytesIn(id) {
  try {
    return (await (await (await folder(true)).getFileHandle(data(id))).getFile()).size;
  } catch (e) {
    if (e.name === 'NotFoundError') return 0;
    throw e;
  }
}

async function remove(id) {
  const dir = await folder(false);
  for (const name of [data(id), sidecar(id)]) {
    try {
      await dir?.removeEntry(name);
    } catch (e) {
      if (e.name !== 'NotFoundError') throw e;
    }
  }
}

/** The spool worker of one spool, each request answered in order. */
class Writer {
  static async open(id, meta) {
    const worker = new Worker(new URL('./spool-worker.js', import.meta.url), { type: 'module' });
    const writer = new Writer(worker);
    try {
      await writer.call({ op: 'open', dir: DIR, name: data(id), sidecar: sidecar(id), meta });
    } catch (e) {
      worker.terminate();
      throw e;
    }
    return writer;
  }

  constructor(worker) {
    this.worker = worker;
    this.sent = 0;
    this.waiting = new Map();
    worker.onmessage = ({ data: answer }) => {
      const call = this.waiting.get(answer.n);
      this.waiting.delete(answer.n);
      if (answer.error) call?.reject(new Error(`the spool failed: ${answer.error}`));
      else call?.resolve(answer);
    };
    // A worker that fails to load (or dies) answers nothing: fail whoever waits.
    worker.onerror = (event) => {
      event.preventDefault?.();
      const error = new Error(`the spool worker failed: ${event.message ?? 'it could not start'}`);
      for (const call of this.waiting.values()) call.reject(error);
      this.waiting.clear();
    };
  }

  call(message) {
    return new Promise((resolve, reject) => {
      this.sent += 1;
      this.waiting.set(this.sent, { resolve, reject });
      this.worker.postMessage({ ...message, n: this.sent });
    });
  }

  /** Resolves once `bytes` are on disk. */
  write(bytes) {
    return this.call({ op: 'write', bytes });
  }

  /** Up to `length` bytes of the spool from offset `at`. */
  async read(at, length) {
    return (await this.call({ op: 'read', at, length })).bytes;
  }

  async close() {
    if (!this.worker) return;
    try {
      await this.call({ op: 'close' });
    } finally {
      this.worker.terminate();
      this.worker = null;
    }
  }
}

/** The most bytes the upload is handed at once, read back from the spool. */
const READ = 1024 * 1024;

/**
 * One stream being spooled. `pumped`: the stream read into the spool as fast as it comes, each
 * chunk flushed. `body`: what the upload reads, read back from the spool only as the upload asks
 * for more, so memory holds what the upload is sending, never what it has fallen behind by (a
 * recording goes on while the network is away). `closed`: the spool file released, once both
 * are done.
 */
class Spooling {
  constructor(reader, writer) {
    this.written = 0;
    this.sent = 0;
    this.ended = false;
    this.failed = null;
    this.reading = true;
    this.wake = () => {};
    let bodyDone;
    const done = new Promise((resolve) => { bodyDone = resolve; });
    this.stop = () => {
      this.reading = false;
      this.wake();
      bodyDone();
    };
    this.pumped = this.pump(reader, writer);
    this.body = new ReadableStream({
      pull: (controller) => this.pull(controller, writer).catch((e) => {
        this.stop();
        throw e;
      }),
      cancel: () => this.stop(),
    }, { highWaterMark: 0 });
    this.closed = Promise.all([this.pumped.catch(() => {}), done]).then(() => writer.close());
  }

  async pump(reader, writer) {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const bytes = await asBytes(value);
        if (bytes.byteLength === 0) continue;
        await writer.write(bytes);
        this.written += bytes.byteLength;
        this.wake();
      }
      this.ended = true;
    } catch (e) {
      this.failed = e;
      reader.cancel(e).catch(() => {});
      throw e;
    } finally {
      this.wake();
    }
  }

  async pull(controller, writer) {
    while (this.reading && this.sent === this.written && !this.ended && !this.failed) {
      await new Promise((resolve) => { this.wake = resolve; });
    }
    if (!this.reading) return;
    if (this.sent < this.written) {
      const bytes = await writer.read(this.sent, Math.min(this.written - this.sent, READ));
      this.sent += bytes.byteLength;
      if (this.reading) controller.enqueue(bytes);
      return;
    }
    // All of it handed on: the stream's end (or its failure) is the body's.
    this.stop();
    if (this.failed) controller.error(this.failed);
    else controller.close();
  }
}

async function asBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof Blob) return new Uint8Array(await chunk.arrayBuffer());
  throw new TypeError('a spooled stream gives Uint8Array, ArrayBuffer, typed array or Blob chunks');
}

/**
 * Uploads `stream` with `uploader`, spooling it to OPFS as it is read. Resolves with the upload's
 * result once the object is complete (the spool removed); rejects with the upload's error. A
 * cancelled upload (`signal`) removes the spool and cancels the stream; after any other failure
 * the spool keeps taking the stream to its end, for a later resume, and the error's `spooled`
 * promise resolves with that spool once the stream ended (null when none is left).
 */
export async function uploadSpooled(uploader, stream, options = {}) {
  const {
    id = crypto.randomUUID(), filename, contentType = '', metadata, expectedSize, onProgress, signal,
  } = options;
  checkId(id);
  if (typeof filename !== 'string' || filename === '') {
    throw new TypeError('uploadSpooled needs options.filename: the name to upload, and to resume, under');
  }
  const release = await hold(id);
  if (!release) throw new Error(`spool ${id} is in use by this or another page`);
  // A new stream starts at byte 0: it never goes on the end of an earlier stream's spool.
  const left = await bytesIn(id).catch((e) => { release(); throw e; });
  if (left > 0) {
    release();
    throw new Error(`spool ${id} holds ${left} bytes of an earlier stream; resume or discard it first`);
  }
  const reader = stream.getReader();
  let spooling;
  let keep = false;
  try {
    const meta = { id, filename, contentType, metadata: metadata ?? null, expectedSize: expectedSize ?? null, created: Date.now() };
    spooling = new Spooling(reader, await Writer.open(id, meta));
    const result = await uploader.upload(spooling.body, {
      filename, contentType, metadata, expectedSize, onProgress, signal, resumeKey: spoolResumeKey(id),
    }).finally(() => spooling.stop());
    await spooling.closed;
    await remove(id);
    return result;
  } catch (error) {
    if (error?.code === 'aborted' || error?.code === 'invalid_options' || !spooling) {
      // Cancelled, refused before it began, or never started: nothing to resume (and nothing
      // earlier was in the spool, see above). The stream is cancelled, so the pump ends.
      await reader.cancel(error).catch(() => {});
      await spooling?.closed.catch(() => {});
      await remove(id).catch(() => {});
    } else {
      // The spool stays held until the stream ended in it.
      keep = true;
      const spooled = spooling.closed.catch(() => {}).then(async () => {
        release();
        return (await spooledUploads()).find((s) => s.id === id) ?? null;
      });
      spooled.catch(() => {});
      if (error && typeof error === 'object') error.spooled = spooled;
    }
    throw error;
  } finally {
    if (!keep) release();
  }
}

/** A spool an earlier page left: its recording, and the upload that was sending it. */
class SpooledUpload {
  constructor(handle, meta, size) {
    this.handle = handle;
    this.id = meta.id;
    this.filename = meta.filename;
    this.contentType = meta.contentType ?? '';
    this.metadata = meta.metadata ?? undefined;
    this.expectedSize = meta.expectedSize ?? null;
    this.created = meta.created;
    this.size = size;
  }

  /** The spooled bytes as a `File` (of the spool's size; its name is the spool's, not `filename`). */
  file() {
    return this.handle.getFile();
  }

  /**
   * Uploads the spool under its resume key, so only the parts the store lacks are sent; the
   * spool is removed once the object is complete, or when the upload is cancelled.
   */
  async resume(uploader, { onProgress, signal } = {}) {
    const release = await hold(this.id);
    if (!release) throw new Error(`spool ${this.id} is in use by this or another page`);
    try {
      const file = await this.file();
      const result = await uploader.upload(file, {
        filename: this.filename,
        contentType: this.contentType,
        metadata: this.metadata,
        onProgress,
        signal,
        resumeKey: spoolResumeKey(this.id),
      });
      await remove(this.id);
      return result;
    } catch (error) {
      if (error?.code === 'aborted') await remove(this.id).catch(() => {});
      throw error;
    } finally {
      release();
    }
  }

  /** Removes the spool. Its multipart upload, if any, is left to the store's lifecycle rule. */
  async discard() {
    const release = await hold(this.id);
    if (!release) throw new Error(`spool ${this.id} is in use by this or another page`);
    try {
      await remove(this.id);
    } finally {
      release();
    }
  }
}

/**
 * The spools earlier pages left (oldest first), except those a page of this origin is writing or
 * uploading.
 */
export async function spooledUploads() {
  if (!navigator.storage?.getDirectory) return [];
  const dir = await folder(false);
  if (!dir) return [];
  const busy = await held();
  const found = [];
  for await (const [name, handle] of dir.entries()) {
    if (handle.kind !== 'file' || !name.endsWith('.json')) continue;
    const id = name.slice(0, -'.json'.length);
    if (busy.has(id)) continue;
    let meta;
    let file;
    try {
      meta = JSON.parse(await (await handle.getFile()).text());
      const spool = await dir.getFileHandle(data(id));
      file = await spool.getFile();
      found.push(new SpooledUpload(spool, { ...meta, id }, file.size));
    } catch (e) {
      // A sidecar without its file (a crash between the two writes) describes nothing.
      if (e.name === 'NotFoundError' || e instanceof SyntaxError) await remove(id).catch(() => {});
    }
  }
  return found.sort((a, b) => a.created - b.created);
}
