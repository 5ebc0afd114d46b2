// The spool's writer and reader: a dedicated module worker, started by spool.js, that owns one
// spool file in the origin private file system (OPFS) through a synchronous access handle.
//
// Why a worker: `createSyncAccessHandle()` exists only in dedicated workers, and it is the one
// OPFS writer whose `flush()` makes written bytes durable at once; a `createWritable()` stream
// commits only on `close()`, which a crash or a reload never reaches. Every chunk is written at
// the end of the file and flushed before its message is answered, and the upload gets only
// bytes read back from the file, so it never sends what a reload could not read back. Those reads
// go through the same handle, which sees every flushed write, where a `File` the page takes is a
// snapshot of one moment.
//
// Messages (each answered with `{ n, size }` or `{ n, error }`, `n` echoed):
//   { n, op: 'open', dir, name, sidecar, meta }  write `meta` as JSON to `sidecar` in OPFS
//                                                 folder `dir`, then open `name` (created if
//                                                 missing, appended to if not)
//   { n, op: 'write', bytes }                     append `bytes` (a Uint8Array), flush
//   { n, op: 'read', at, length }                 answer up to `length` bytes from `at` (`bytes`)
//   { n, op: 'close' }                            flush and release the file
let file = null;
let size = 0;

async function open({ dir, name, sidecar, meta }) {
  const root = await navigator.storage.getDirectory();
  const folder = await root.getDirectoryHandle(dir, { create: true });
  // The sidecar first: a spool file without one is never listed, so a crash between the two
  // leaves nothing half-described.
  const side = await (await folder.getFileHandle(sidecar, { create: true })).createSyncAccessHandle();
  try {
    const json = new TextEncoder().encode(JSON.stringify(meta));
    side.truncate(0);
    side.write(json, { at: 0 });
    side.flush();
  } finally {
    side.close();
  }
  file = await (await folder.getFileHandle(name, { create: true })).createSyncAccessHandle();
  size = file.getSize();
}

function write(bytes) {
  let at = 0;
  // write() may write less than asked (a full disk throws instead, in current browsers).
  while (at < bytes.byteLength) {
    const wrote = file.write(bytes.subarray(at), { at: size + at });
    if (wrote <= 0) throw new Error(`the spool file took no bytes at offset ${size + at}`);
    at += wrote;
  }
  file.flush();
  size += at;
}

function read({ at, length }) {
  const bytes = new Uint8Array(length);
  return bytes.subarray(0, file.read(bytes, { at }));
}

function close() {
  if (file) {
    file.flush();
    file.close();
    file = null;
  }
}

async function handle(data) {
  try {
    if (data.op === 'read') {
      const bytes = read(data);
      self.postMessage({ n: data.n, size, bytes }, [bytes.buffer]);
      return;
    }
    if (data.op === 'open') await open(data);
    else if (data.op === 'write') write(data.bytes);
    else if (data.op === 'close') close();
    else throw new Error(`unknown spool message ${data.op}`);
    self.postMessage({ n: data.n, size });
  } catch (e) {
    self.postMessage({ n: data.n, error: `${e.name}: ${e.message}` });
  }
}

// One message at a time, in order, though `open` awaits.
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  queue = queue.then(() => handle(data));
};
