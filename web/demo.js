// The demo page: a multi-file queue on top of the s3-direct browser client.
//
// Query parameters tune it without editing code (the browser tests use them):
//   ?partSize=5      part size in MiB            (default: the client's)
//   ?concurrency=4   parallel part PUTs per file (default: the client's, 6)
//   ?files=2         files uploading at once     (default 2; the rest wait in the queue)
//   ?endpoint=/s3    the signing API
//   ?retryDelay=200  first retry delay in ms; ?stallTimeout=5000 stall timeout in ms
//   ?checksum=md5    part checksums: auto (the server's choice), off, md5, crc32, crc32c, sha256
//
// Choosing a file again after a reload (or a crash) resumes its upload: the client keeps a
// record in IndexedDB and sends only the parts the store lacks.
import init, { Uploader } from '/pkg/s3_direct.js';

const params = new URLSearchParams(location.search);
const number = (name) => (params.has(name) ? Number(params.get(name)) : undefined);

const options = { endpoint: params.get('endpoint') ?? '/s3' };
if (number('partSize')) options.partSize = number('partSize') * 1024 * 1024;
if (number('concurrency')) options.concurrency = number('concurrency');
for (const name of ['retries', 'retryDelay', 'maxRetryDelay', 'stallTimeout']) {
  if (params.has(name)) options[name] = number(name);
}
if (params.has('checksum')) options.checksum = params.get('checksum');
const filesAtOnce = Math.max(1, number('files') ?? 2);

const $ = (sel, el = document) => el.querySelector(sel);
const queue = [];
let running = 0;
let uploader;

function formatBytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function formatEta(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '';
  if (seconds < 60) return `${Math.ceil(seconds)} s left`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.ceil(seconds % 60)} s left` : `${Math.floor(m / 60)} h ${m % 60} min left`;
}

// Chromium can keep a file's handle across restarts (File System Access API). Files chosen
// through showOpenFilePicker keep theirs in IndexedDB until their upload ends, and after a reload
// or a crash the page offers to reopen them; the client then resumes from its own record.
const handleDb = new Promise((resolve) => {
  if (typeof indexedDB === 'undefined') { resolve(null); return; }
  const req = indexedDB.open('s3-direct-demo', 1);
  req.onupgradeneeded = () => req.result.createObjectStore('handles');
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => resolve(null);
});
const fileKey = (f) => `${f.name}:${f.size}:${f.lastModified}`;

async function handles(mode, body) {
  const db = await handleDb;
  if (!db) return undefined;
  return new Promise((resolve) => {
    const tx = db.transaction('handles', mode);
    const req = body(tx.objectStore('handles'));
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = () => resolve(undefined);
  });
}
const keepHandle = (file, handle) => handles('readwrite', (s) => s.put({ handle, name: file.name }, fileKey(file)));
const dropHandle = (file) => handles('readwrite', (s) => s.delete(fileKey(file)));

async function showInterrupted() {
  const list = $('#interrupted');
  const entries = (await handles('readonly', (s) => s.getAll())) ?? [];
  const keys = (await handles('readonly', (s) => s.getAllKeys())) ?? [];
  list.replaceChildren();
  entries.forEach((entry, i) => {
    const li = document.createElement('li');
    li.dataset.key = keys[i];
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Resume';
    button.addEventListener('click', async () => {
      const { handle } = entry;
      const granted = (await handle.queryPermission?.({ mode: 'read' })) === 'granted'
        || (await handle.requestPermission?.({ mode: 'read' })) === 'granted';
      if (!granted) return;
      const file = await handle.getFile();
      li.remove();
      // A file changed since is uploaded anew (the client never mixes its parts in); its old
      // entry goes.
      if (fileKey(file) !== keys[i]) await handles('readwrite', (s) => s.delete(keys[i]));
      addFile(file, handle);
    });
    li.append(`${entry.name} `, button);
    list.append(li);
  });
  $('#interrupted-section').hidden = entries.length === 0;
}

function addFile(file, handle = null) {
  if (handle) keepHandle(file, handle);
  const row = $('#row').content.firstElementChild.cloneNode(true);
  $('.name', row).textContent = file.name;
  $('.size', row).textContent = formatBytes(file.size);
  $('.detail', row).textContent = 'Waiting…';
  const item = { file, row, controller: new AbortController(), handle: null };
  $('.cancel', row).addEventListener('click', () => cancel(item));
  $('.pause', row).addEventListener('click', () => togglePause(item));
  $('#queue').append(row);
  queue.push(item);
  pump();
}

function cancel(item) {
  item.controller.abort();
  if (item.row.dataset.state === 'queued') finish(item, 'cancelled', 'Cancelled before it started.');
}

function togglePause(item) {
  if (!item.handle) return;
  const button = $('.pause', item.row);
  if (item.handle.state === 'paused') {
    item.handle.resume();
    button.textContent = 'Pause';
  } else {
    item.handle.pause();
    button.textContent = 'Resume';
  }
}

function finish(item, state, text) {
  item.row.dataset.state = state;
  $('.detail', item.row).textContent = text;
  $('.cancel', item.row).disabled = true;
  $('.pause', item.row).disabled = true;
}

function pump() {
  while (running < filesAtOnce && queue.length > 0) {
    const item = queue.shift();
    if (item.row.dataset.state !== 'queued') continue;
    running += 1;
    start(item).finally(() => { running -= 1; pump(); updateStatus(); });
  }
  updateStatus();
}

const phaseText = { paused: 'paused', offline: 'offline, waiting for the network', completing: 'assembling' };

async function start(item) {
  const { file, row, controller } = item;
  row.dataset.state = 'uploading';
  const bar = $('progress', row);
  const detail = $('.detail', row);
  detail.textContent = 'Starting…';
  try {
    item.handle = uploader.start(file, {
      signal: controller.signal,
      onProgress(p) {
        bar.value = p.bytesTotal ? p.bytesSent / p.bytesTotal : 0;
        row.dataset.sent = String(p.bytesSent);
        row.dataset.partsDone = String(p.partsDone);
        row.dataset.phase = p.phase;
        const status = phaseText[p.phase] ?? `${formatBytes(p.speed)}/s · ${formatEta(p.eta)}`;
        detail.textContent = `${formatBytes(p.bytesSent)} of ${formatBytes(p.bytesTotal)} · `
          + `${p.partsDone}/${p.partsTotal} parts · ${status}`;
      },
    });
    const result = await item.handle.promise;
    bar.value = 1;
    row.dataset.key = result.key;
    dropHandle(file);
    if (result.checksum) row.dataset.checksum = result.checksum;
    finish({ row }, 'done', `Stored as ${result.key}`);
  } catch (err) {
    if (err.code === 'aborted') {
      dropHandle(file);
      finish({ row }, 'cancelled', 'Cancelled; nothing was kept in the store.');
    }
    else finish({ row }, 'error', `${err.message}${err.code ? ` (${err.code})` : ''}`);
  }
}

function updateStatus() {
  const rows = [...document.querySelectorAll('#queue .upload')];
  const count = (s) => rows.filter((r) => r.dataset.state === s).length;
  const parts = [`${count('uploading')} uploading`, `${count('queued')} waiting`, `${count('done')} done`];
  if (count('error')) parts.push(`${count('error')} failed`);
  $('#status').textContent = rows.length ? parts.join(' · ') : '';
}

function wire() {
  const drop = $('#drop');
  const picker = $('#picker');
  picker.addEventListener('change', () => {
    [...picker.files].forEach(addFile);
    picker.value = '';
  });
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); picker.click(); }
  });
  for (const type of ['dragenter', 'dragover']) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const type of ['dragleave', 'drop']) {
    drop.addEventListener(type, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    [...e.dataTransfer.files].forEach(addFile);
  });
  const reopenable = $('#reopenable');
  if (window.showOpenFilePicker) {
    reopenable.hidden = false;
    reopenable.addEventListener('click', async () => {
      const picked = await window.showOpenFilePicker({ multiple: true }).catch(() => []);
      for (const handle of picked) addFile(await handle.getFile(), handle);
    });
  }
  const shown = [];
  if (options.partSize) shown.push(`${options.partSize / 1048576} MiB parts`);
  if (options.concurrency) shown.push(`${options.concurrency} parts at once`);
  $('#settings').textContent = shown.join(' · ');
}

await init();
uploader = new Uploader(options);
wire();
await showInterrupted();
// For the browser tests: enqueue a file with its handle, as the picker would.
window.s3DirectDemo = { addFile };
document.body.dataset.ready = 'true';
