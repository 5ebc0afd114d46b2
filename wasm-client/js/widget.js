// <s3-direct-upload>: a drop-in upload field for plain HTML forms, on top of the s3-direct client.
//
// Files go straight from the browser to the store; the element is form-associated (ElementInternals)
// and contributes one form entry per completed upload under its `name` — the server's signed
// receipt of the stored object (`form-value="receipt"`, the default), which the backend verifies
// instead of trusting the browser, or the object key (`form-value="key"`) — and keeps the form from
// submitting while uploads are unfinished. No build step, no dependencies:
//
//   <script type="module" src="/pkg/widget.js"></script>
//   <form><s3-direct-upload name="files" endpoint="/s3" multiple></s3-direct-upload>…</form>
//
// All files of one element share ONE `UploadQueue`, so `concurrency` is one limit across them.
// Folders are widget-folders.js's, imported the first time a folder is chosen or dropped.
import init, * as client from './s3_direct.js';

// The wasm module is loaded once per page, by whichever element connects first. `init` returns at
// once when the page already initialised the module itself.
let clientReady;
function loadClient() {
  clientReady ??= init().then(() => client);
  return clientReady;
}

// Folders (a dropped folder's walk, a folder's group row) are a module of their own, loaded the
// first time a folder is chosen or dropped: a page that takes files only never downloads it.
let foldersReady;
let folders; // the module, once loaded
function loadFolders() {
  foldersReady ??= import('./widget-folders.js').then((module) => { folders = module; return module; });
  return foldersReady;
}

/** Plain sentences for error codes; the code itself stays in the row's details. */
const MESSAGES = {
  aborted: 'The upload was cancelled.',
  cancelled: 'The upload was cancelled.',
  missing_etag: 'The storage service is not set up to accept uploads from this page. Please tell the site owner.',
  http_error: 'The storage service refused the file.',
  http_error_auth: 'The storage service refused the file. Please try again; if it keeps happening, tell the site owner.',
  http_error_server: 'The storage service had a problem. Please try again.',
  network_error: 'The connection was lost. Check your internet connection and try again.',
  stalled: 'The upload stopped making progress. Check your internet connection and try again.',
  file_unreadable: 'The file could not be read. It may have been moved or changed; please choose it again.',
  create_failed: 'The upload service could not be reached. Please try again.',
  sign_failed: 'The upload service could not be reached. Please try again.',
  list_failed: 'The upload service could not be reached. Please try again.',
  complete_failed: 'The file was sent, but the upload could not be finished. Please try again.',
  invalid_options: 'This upload field is set up wrongly. Please tell the site owner.',
  file_too_large: 'This file is too large.',
  file_type_not_accepted: 'This type of file is not accepted here.',
  client_unavailable: 'The uploader could not start. Reload the page and try again.',
  unauthenticated: 'You are not signed in, or your session has expired. Sign in again and retry.',
  forbidden: 'You are not allowed to upload this file.',
  content_type_not_allowed: 'This type of file is not accepted here.',
  invalid_filename: 'The file name cannot be used. Rename the file and try again.',
  invalid_size: 'This file is too large.',
  rate_limited: 'Too many uploads right now. Wait a moment and try again.',
  store_unavailable: 'The storage service is unavailable right now. Please try again later.',
  no_such_upload: 'The upload expired or was removed on the server. Please try again.',
  invalid_upload_token: 'The upload expired. Please try again.',
  plan_violated: 'The file changed while it was being uploaded. Please choose it again.',
  invalid_part: 'Part of the file did not arrive intact. Please try again.',
  internal: 'The upload service had an unexpected problem. Please try again later.',
  busy: 'The upload service is busy right now. Please try again in a moment.',
  misdirected_request: 'This page cannot reach its upload service at this address. Please tell the site owner.',
  invalid_host: 'This page cannot reach its upload service at this address. Please tell the site owner.',
  invalid_content_type: 'The type of this file cannot be recognised. Rename it with a usual extension and try again.',
  unknown: 'The upload failed. Please try again.',
};

/** Codes of failures that trying again cannot fix: the row offers Remove, not Retry. */
const FINAL_CODES = new Set(['file_too_large', 'file_type_not_accepted', 'invalid_options', 'invalid_filename', 'content_type_not_allowed', 'forbidden', 'invalid_content_type', 'misdirected_request', 'invalid_host']);

const ACTIVE = new Set(['queued', 'uploading', 'paused', 'completing']);

const STATUS = {
  queued: 'Waiting',
  uploading: 'Uploading',
  paused: 'Paused',
  completing: 'Finishing',
  done: 'Uploaded',
  cancelled: 'Cancelled',
};

function formatBytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${units[i]}`;
}

function formatEta(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '';
  if (seconds < 60) return `${Math.max(1, Math.ceil(seconds))} s left`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s left` : `${Math.floor(m / 60)} h ${m % 60} min left`;
}

const UNITS = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** `"10MB"`, `"5 GiB"` or `"1048576"` in bytes; `undefined` when absent or unreadable. */
function parseBytes(text) {
  if (text == null || text.trim() === '') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  return m ? Math.round(Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]) : NaN;
}

/** Whether `file` matches an `accept` list (`.pdf`, `image/*`, `application/zip`), as the picker would. */
function accepts(accept, file) {
  const tokens = (accept ?? '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);
  if (tokens.length === 0) return true;
  const name = file.name.toLowerCase();
  const type = (file.type ?? '').toLowerCase();
  return tokens.some((t) => (t.startsWith('.') ? name.endsWith(t)
    : t.endsWith('/*') ? type.startsWith(t.slice(0, -1)) : type === t));
}

const STYLE = `
:host {
  display: block;
  font: var(--s3d-font, inherit);
  color: var(--s3d-color, inherit);
  --_accent: var(--s3d-accent, #1d4ed8);
  --_muted: var(--s3d-muted-color, #4b5563);
  /* Buttons and the drop zone are outlined by it: #6b7280 keeps 3:1 against white (WCAG 1.4.11). */
  --_border: var(--s3d-border-color, #6b7280);
  --_radius: var(--s3d-radius, 8px);
  --_error: var(--s3d-error-color, #b91c1c);
  --_success: var(--s3d-success-color, #15803d);
  --_paused: var(--s3d-paused-color, #a16207);
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.dropzone {
  display: block; width: 100%; padding: var(--s3d-dropzone-padding, 1.5rem 1rem);
  font: inherit; color: inherit; text-align: center; cursor: pointer;
  background: var(--s3d-dropzone-background, transparent);
  border: 2px dashed var(--_border); border-radius: var(--_radius);
}
.dropzone:hover, :host([dragover]) .dropzone {
  border-color: var(--_accent); background: var(--s3d-dropzone-active-background, #eff6ff);
}
.dropzone:disabled { cursor: not-allowed; opacity: 0.6; }
.link { color: var(--_accent); text-decoration: underline; }
.hint { display: block; margin-top: 0.25rem; font-size: 0.875em; color: var(--_muted); }
.hint:empty { display: none; }
:focus-visible { outline: var(--s3d-focus-ring, 3px solid var(--_accent)); outline-offset: 2px; }
.files:focus { outline: none; }
.list { list-style: none; margin: 0; padding: 0; }
.item {
  margin-top: var(--s3d-gap, 0.5rem); padding: var(--s3d-item-padding, 0.625rem 0.75rem);
  background: var(--s3d-item-background, transparent);
  border: 1px solid var(--_border); border-radius: var(--_radius);
}
.top { display: flex; flex-wrap: wrap; gap: 0.25rem 0.75rem; align-items: center; }
.name { flex: 1 1 10rem; min-width: 0; font-weight: 600; overflow-wrap: anywhere; }
.size { color: var(--_muted); white-space: nowrap; }
.actions { display: flex; gap: 0.375rem; }
button.action {
  font: inherit; font-size: 0.875em; padding: 0.125rem 0.625rem; cursor: pointer;
  color: var(--s3d-button-color, inherit); background: var(--s3d-button-background, transparent);
  border: 1px solid var(--_border); border-radius: var(--s3d-button-radius, 999px);
}
button.action:hover { border-color: var(--_accent); color: var(--_accent); }
.bar {
  height: var(--s3d-bar-height, 0.5rem); margin: 0.5rem 0 0.25rem; overflow: hidden;
  background: var(--s3d-bar-background, #e5e7eb); border-radius: 999px;
}
.fill { height: 100%; width: 0; background: var(--_accent); transition: width 0.2s linear; }
/* A folder's row holds its files' rows: its state colours its own bar and status only. */
.item[data-state="paused"]>.bar>.fill { background: var(--_paused); }
.item[data-state="done"]>.bar>.fill { background: var(--_success); }
.item[data-state="error"]>.bar>.fill { background: var(--_error); }
.item[data-state="cancelled"]>.bar>.fill { background: var(--_border); }
.stats { display: flex; flex-wrap: wrap; gap: 0 0.75rem; font-size: 0.875em; color: var(--_muted); }
.stats span:empty { display: none; }
.item[data-state="done"]>.stats>.status { color: var(--_success); }
.item[data-state="paused"]>.stats>.status { color: var(--_paused); }
.item[data-state="error"]>.stats>.status { color: var(--_error); font-weight: 600; }
.files-of { margin-top: 0.25rem; font-size: 0.875em; }
.files-of .item { padding: 0.375rem 0.5rem; }
.item[data-state="cancelled"] { opacity: 0.7; }
.summary, .notes { margin-top: var(--s3d-gap, 0.5rem); font-size: 0.875em; color: var(--_muted); }
.detail { margin-top: 0.25rem; font-size: 0.8125em; color: var(--_muted); }
.detail code { overflow-wrap: anywhere; }
.visually-hidden {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
@media (prefers-reduced-motion: reduce) { .fill { transition: none; } }
@media (forced-colors: active) {
  .bar { border: 1px solid CanvasText; }
  .fill { forced-color-adjust: none; background: Highlight; }
}
`;

const TEMPLATE = `
<style>${STYLE}</style>
<button type="button" class="dropzone" part="dropzone" aria-describedby="hint">
  <span class="prompt" part="prompt"><slot name="prompt"><strong>Drop files here</strong> or <span class="link">choose files</span></slot></span>
  <span class="hint" part="hint" id="hint"></span>
</button>
<input type="file" class="picker" hidden tabindex="-1">
<!-- Focusable by script and click only: with delegatesFocus, a click on a row's text would
     otherwise focus (and scroll to) the drop zone. -->
<div class="files" tabindex="-1">
  <ul class="list" part="list" aria-label="Uploads"></ul>
  <div class="summary" part="summary" hidden></div>
  <div class="notes" part="notes" hidden></div>
</div>
<div class="live visually-hidden" role="status" aria-live="polite"></div>
`;

const ROW = `
<div class="top">
  <span class="name" part="name"></span>
  <span class="size" part="size"></span>
  <span class="actions" part="actions">
    <button type="button" class="action toggle"></button>
    <button type="button" class="action retry" part="button retry-button">Retry</button>
    <button type="button" class="action cancel" part="button cancel-button">Cancel</button>
    <button type="button" class="action remove" part="button remove-button">Remove</button>
  </span>
</div>
<div class="bar" part="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">
  <div class="fill" part="bar-fill"></div>
</div>
<div class="stats"><span class="status" part="status"></span><span class="percent" part="percent"></span><span class="speed" part="speed"></span><span class="eta" part="eta"></span></div>
<details class="detail" part="error-detail" hidden><summary>Details</summary><code></code></details>
`;

/** The parts of a row (a file's or a folder's) made from ROW. */
function rowUi(li) {
  const $ = (sel) => li.querySelector(sel);
  return {
    name: $('.name'), size: $('.size'), toggle: $('.toggle'), retry: $('.retry'), cancel: $('.cancel'),
    remove: $('.remove'), bar: $('.bar'), fill: $('.fill'), status: $('.status'), percent: $('.percent'),
    speed: $('.speed'), eta: $('.eta'), detail: $('.detail'), code: $('.detail code'),
  };
}

/** The row after `el`, else the one before it: where focus goes when `el` leaves. */
const beside = (el) => el.nextElementSibling ?? el.previousElementSibling;

const retryable = (row) => row.state === 'error' && !FINAL_CODES.has(row.error?.code) && row.file;

let nextRowId = 1;

export class S3DirectUploadElement extends HTMLElement {
  static formAssociated = true;

  static observedAttributes = ['accept', 'multiple', 'folders', 'max-size', 'disabled', 'name', 'required', 'form-value'];

  #internals;
  #root;
  #rows = [];
  #queue = null;
  #queueOptionsKey = '';
  #unsubscribe = [];
  #busy = false;
  #headers = {};
  #messages = {};
  #disabledByForm = false;
  #dragDepth = 0;
  #host = null;
  #cleared = 0; // how many times clear() ran
  #dropzone;
  #picker;
  #list;
  #live;
  #summary;

  constructor() {
    super();
    this.#internals = this.attachInternals();
    // A `<label for>` names the element; as a group, that name covers the controls inside.
    this.#internals.role = 'group';
    this.#root = this.attachShadow({ mode: 'open', delegatesFocus: true });
    this.#root.innerHTML = TEMPLATE;
    const $ = (sel) => this.#root.querySelector(sel);
    this.#dropzone = $('.dropzone');
    this.#picker = $('.picker');
    this.#list = $('.list');
    this.#live = $('.live');
    this.#summary = $('.summary');
    this.#dropzone.addEventListener('click', () => this.#picker.click());
    this.#picker.addEventListener('change', () => {
      this.addFiles(this.#picker.files);
      this.#picker.value = '';
    });
    this.addEventListener('dragenter', (e) => this.#onDrag(e, 1));
    this.addEventListener('dragover', (e) => this.#onDrag(e, 0));
    this.addEventListener('dragleave', (e) => this.#onDrag(e, -1));
    this.addEventListener('drop', (e) => {
      this.#dragDepth = 0;
      this.removeAttribute('dragover');
      if (!e.dataTransfer?.types.includes('Files')) return;
      e.preventDefault();
      if (this.#isDisabled) return;
      // Entries are readable only during the event: take them now, walk them after.
      const entries = [...(e.dataTransfer.items ?? [])]
        .filter((item) => item.kind === 'file')
        .map((item) => item.webkitGetAsEntry?.())
        .filter(Boolean);
      const hasFolder = entries.some((entry) => entry.isDirectory);
      if (!hasFolder) {
        this.addFiles(e.dataTransfer.files);
        return;
      }
      loadFolders().then(({ walkDrop }) => walkDrop(entries)).then(({ files, empty }) => {
        this.#addEntries(files, empty);
      }, (err) => {
        this.#note(`The dropped folder could not be read: ${err?.message ?? err}`);
      });
    });
  }

  connectedCallback() {
    this.#syncPicker();
    this.#refresh();
    // Start loading the wasm now, so the first file does not wait for it; failures surface on use.
    loadClient().catch(() => {});
  }

  attributeChangedCallback(name) {
    if (name === 'name' || name === 'required' || name === 'form-value') this.#refresh();
    else this.#syncPicker();
    if (name === 'disabled') for (const row of this.#rows) this.#render(row);
  }

  // ----- properties that reflect attributes

  get endpoint() { return this.getAttribute('endpoint') ?? '/s3'; }
  set endpoint(v) { this.setAttribute('endpoint', v); }
  get name() { return this.getAttribute('name') ?? ''; }
  set name(v) { this.setAttribute('name', v); }
  get accept() { return this.getAttribute('accept') ?? ''; }
  set accept(v) { this.setAttribute('accept', v); }
  get multiple() { return this.hasAttribute('multiple'); }
  set multiple(v) { this.toggleAttribute('multiple', Boolean(v)); }
  /** The picker chooses a folder (attribute `folders`); drops take folders either way. */
  get folders() { return this.hasAttribute('folders'); }
  set folders(v) { this.toggleAttribute('folders', Boolean(v)); }
  get required() { return this.hasAttribute('required'); }
  set required(v) { this.toggleAttribute('required', Boolean(v)); }
  get disabled() { return this.hasAttribute('disabled'); }
  set disabled(v) { this.toggleAttribute('disabled', Boolean(v)); }
  /** Largest file accepted, in bytes (`max-size` accepts `10MB`, `2 GiB`, …); `undefined` for none. */
  get maxSize() { return parseBytes(this.getAttribute('max-size')); }
  set maxSize(v) { if (v == null) this.removeAttribute('max-size'); else this.setAttribute('max-size', String(v)); }
  get concurrency() { return this.#numberAttribute('concurrency'); }
  set concurrency(v) { this.#setOptional('concurrency', v); }
  get partSize() { return parseBytes(this.getAttribute('part-size')); }
  set partSize(v) { this.#setOptional('part-size', v); }
  get checksum() { return this.getAttribute('checksum') ?? 'auto'; }
  set checksum(v) { this.#setOptional('checksum', v); }
  /**
   * What the form submits for each completed upload: `receipt` (the default; the key when the
   * server gave no receipt) or `key`.
   */
  get formValue() { return this.getAttribute('form-value') === 'key' ? 'key' : 'receipt'; }
  set formValue(v) { this.#setOptional('form-value', v); }

  // ----- properties only

  /** Extra headers for every call to the signing API, e.g. `{ Authorization: 'Bearer …' }`. */
  get headers() { return { ...this.#headers }; }
  set headers(v) { this.#headers = { ...(v ?? {}) }; }

  /** Overrides of the sentences shown for error codes, e.g. `{ forbidden: 'Ask your admin.' }`. */
  get messages() { return { ...this.#messages }; }
  set messages(v) { this.#messages = { ...(v ?? {}) }; }

  /** `idle`, `uploading`, `paused`, `error` or `done` (also the `state` attribute). */
  get state() { return this.getAttribute('state') ?? 'idle'; }

  /** Keys of the completed uploads, in the order the files were added. */
  get keys() { return this.#rows.filter((r) => r.state === 'done').map((r) => r.result.key); }

  /** What the form submits, in the order the files were added (see `formValue`). */
  get values() { return this.#rows.filter((r) => r.state === 'done').map((r) => this.#valueOf(r.result)); }

  /** A snapshot of every row: `{ id, name, size, state, progress, result, error }`. */
  get items() {
    return this.#rows.map((r) => ({
      id: r.id,
      name: r.name,
      path: r.path ?? null,
      group: r.group?.name ?? null,
      size: r.size,
      state: r.state,
      progress: r.progress ? { ...r.progress } : null,
      result: r.result ? { ...r.result } : null,
      error: r.error ? { code: r.error.code, message: this.#sentence(r.error), detail: r.error.message } : null,
    }));
  }

  /**
   * A snapshot of every chosen or dropped folder: `{ id, name, state, files, done, failed,
   * fraction }`, `fraction` being its bar (0 to 1; 1 only once every file is done).
   */
  get groups() {
    return [...new Set(this.#rows.map((r) => r.group).filter(Boolean))].map((g) => g.snapshot());
  }

  /**
   * Progress of every row together: `{ bytesSent, bytesTotal, fraction }`; `bytesTotal` is null
   * while a stream has not ended (it counts as what it sent, `fraction` stays below 1).
   */
  get progress() {
    let bytesSent = 0;
    let bytesTotal = 0;
    let open = false;
    for (const r of this.#rows) {
      if (r.state === 'cancelled' || r.state === 'error') continue;
      const sent = r.progress?.bytesSent ?? 0;
      open ||= r.size == null;
      bytesTotal += r.size ?? sent + 1;
      bytesSent += r.state === 'done' ? r.size : sent;
    }
    const fraction = bytesTotal ? bytesSent / bytesTotal : 0;
    return { bytesSent, bytesTotal: open ? null : bytesTotal, fraction };
  }

  get form() { return this.#internals.form; }
  get type() { return this.localName; }
  get validity() { return this.#internals.validity; }
  get validationMessage() { return this.#internals.validationMessage; }
  get willValidate() { return this.#internals.willValidate; }
  checkValidity() { return this.#internals.checkValidity(); }
  reportValidity() { return this.#internals.reportValidity(); }

  // ----- methods

  /**
   * Adds files as if they were chosen in the picker. A `File` with a `webkitRelativePath` (from a
   * folder picker) keeps its path: the key keeps its folders (the page's first folder is added
   * once the folder module has loaded).
   */
  addFiles(files) {
    this.#addEntries([...files].map((file) => ({ file, path: file.webkitRelativePath || null })), []);
  }

  /**
   * Adds a `ReadableStream<Uint8Array>` (a recording, a file compressed in the page…) as a row of
   * its own, uploaded as it is read: `filename` is required; its size is shown once it ends. A
   * stream is read once, so a failed one cannot be retried.
   */
  addStream(stream, { filename, contentType, expectedSize } = {}) {
    if (!this.multiple) for (const row of [...this.#rows]) this.#remove(row, { focus: false });
    const row = this.#newRow(filename, null);
    row.filename = filename;
    row.stream = stream;
    row.streamOptions = { contentType, expectedSize };
    this.#render(row);
    this.#enqueue(row);
    this.#refresh();
  }

  /** Adds `{ file, path }` entries (`path`: within a chosen folder, or null), and notes `empty` folders. */
  #addEntries(entries, empty) {
    // The first folder waits for the folder module.
    if (!folders && entries.some((e) => e.path)) {
      // A `clear()` meanwhile clears this folder too.
      const cleared = this.#cleared;
      loadFolders().then(() => { if (cleared === this.#cleared) this.#addEntries(entries, empty); },
        (err) => this.#note(`The folder could not be read: ${err?.message ?? err}`));
      return;
    }
    let list = entries;
    for (const folder of empty) this.#note(`The folder ${folder} is empty: nothing in it was uploaded.`);
    if (list.length === 0) {
      this.#refresh();
      return;
    }
    if (!this.multiple) {
      // One file at most: a new choice replaces whatever was there.
      list = list.slice(0, 1);
      for (const row of [...this.#rows]) this.#remove(row, { focus: false });
    }
    // The files of one chosen or dropped folder (the first folder of their paths) form a group.
    const groups = new Map();
    for (const { file, path } of list) {
      const folder = path?.split('/')[0];
      if (folder && !groups.has(folder)) groups.set(folder, new folders.Folder(this.#folderHost, folder));
      this.#add(file, path, groups.get(folder));
    }
    this.#refresh();
  }

  /** Shows (and announces) a line about what was chosen, until the element is cleared. */
  #note(text) {
    const notes = this.#root.querySelector('.notes');
    const line = document.createElement('div');
    line.textContent = text;
    notes.append(line);
    notes.hidden = false;
    this.#live.textContent = text;
  }

  pauseAll() { for (const r of this.#rows) if (r.state === 'queued' || r.state === 'uploading') this.#pause(r); }
  resumeAll() { for (const r of this.#rows) if (r.state === 'paused') this.#resume(r); }
  cancelAll() { for (const r of this.#rows) if (ACTIVE.has(r.state)) this.#cancel(r); }

  /** Cancels unfinished uploads and removes every row (the form then submits no keys). */
  clear() {
    this.#cleared += 1;
    for (const row of [...this.#rows]) this.#remove(row, { focus: false });
    const notes = this.#root.querySelector('.notes');
    notes.replaceChildren();
    notes.hidden = true;
    this.#refresh();
  }

  // ----- form-associated callbacks

  formResetCallback() { this.clear(); }

  formDisabledCallback(disabled) {
    this.#disabledByForm = disabled;
    this.#syncPicker();
    for (const row of this.#rows) this.#render(row);
  }

  /** Back/forward navigation and autofill restore the completed uploads (their keys). */
  formStateRestoreCallback(state) {
    let restored;
    try { restored = JSON.parse(state); } catch { return; }
    if (!Array.isArray(restored) || this.#rows.length > 0) return;
    for (const r of restored) {
      if (typeof r?.key !== 'string') continue;
      const row = this.#newRow(r.name ?? r.key, r.size ?? 0);
      row.state = 'done';
      row.result = {
        key: r.key, bucket: r.bucket, location: r.location, etag: r.etag, size: r.size, receipt: r.receipt ?? null,
      };
      row.progress = { bytesSent: row.size, bytesTotal: row.size, speed: 0, eta: null, phase: 'done' };
      this.#render(row);
    }
    this.#refresh();
  }

  // ----- internals

  get #isDisabled() { return this.disabled || this.#disabledByForm; }

  #valueOf(result) {
    return this.formValue === 'receipt' && typeof result.receipt === 'string' ? result.receipt : result.key;
  }

  #numberAttribute(name) {
    const v = this.getAttribute(name);
    return v == null || v.trim() === '' ? undefined : Number(v);
  }

  #setOptional(name, v) {
    if (v == null) this.removeAttribute(name); else this.setAttribute(name, String(v));
  }

  #syncPicker() {
    this.#picker.multiple = this.multiple;
    this.#picker.webkitdirectory = this.folders;
    if (this.accept) this.#picker.accept = this.accept; else this.#picker.removeAttribute('accept');
    this.#dropzone.disabled = this.#isDisabled;
    const hint = [];
    if (this.accept) hint.push(this.accept.split(',').map((t) => t.trim()).join(', '));
    const max = this.maxSize;
    if (Number.isFinite(max)) hint.push(`up to ${formatBytes(max)}${this.multiple ? ' each' : ''}`);
    this.#root.querySelector('.hint').textContent = hint.join(' · ');
    const link = this.#root.querySelector('.link');
    if (link) link.textContent = this.folders ? 'choose a folder' : this.multiple ? 'choose files' : 'choose a file';
    const strong = this.#root.querySelector('.prompt strong');
    if (strong) strong.textContent = this.folders ? 'Drop files or folders here' : this.multiple ? 'Drop files here' : 'Drop a file here';
  }

  #onDrag(e, step) {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    if (this.#isDisabled) {
      e.dataTransfer.dropEffect = 'none';
      return;
    }
    e.dataTransfer.dropEffect = 'copy';
    this.#dragDepth = Math.max(0, this.#dragDepth + step);
    this.toggleAttribute('dragover', step >= 0 || this.#dragDepth > 0);
  }

  /** The upload options the attributes and properties ask for. */
  #options() {
    const o = { endpoint: this.endpoint, headers: this.headers };
    const concurrency = this.concurrency;
    if (concurrency !== undefined) o.concurrency = concurrency;
    const partSize = this.partSize;
    if (partSize !== undefined) o.partSize = partSize;
    if (this.hasAttribute('checksum')) o.checksum = this.checksum;
    return o;
  }

  /**
   * The element's one queue. Options are read when it is made; when they changed since, a new
   * queue is made once the old one has nothing unfinished (so one limit holds across all files).
   */
  #queueFor(lib) {
    const options = this.#options();
    const key = JSON.stringify(options);
    const unfinished = this.#rows.some((r) => r.item && ACTIVE.has(r.state));
    if (this.#queue && (key === this.#queueOptionsKey || unfinished)) return this.#queue;
    for (const off of this.#unsubscribe) off();
    const queue = new lib.UploadQueue(options);
    this.#queue = queue;
    this.#queueOptionsKey = key;
    this.#unsubscribe = [
      queue.on('item-state', ({ item, state }) => this.#onState(this.#rowOf(queue, item), state)),
      queue.on('item-progress', ({ item, progress }) => this.#onProgress(this.#rowOf(queue, item), progress)),
      queue.on('item-complete', ({ item, result }) => this.#onComplete(this.#rowOf(queue, item), result)),
      queue.on('item-error', ({ item, error }) => this.#onError(this.#rowOf(queue, item), error)),
    ];
    return queue;
  }

  #newRow(name, size, file = null, parent = this.#list) {
    const li = document.createElement('li');
    li.className = 'item';
    li.setAttribute('part', 'item');
    li.innerHTML = ROW;
    const row = {
      id: nextRowId++,
      file,
      name,
      size,
      state: 'queued',
      progress: null,
      result: null,
      error: null,
      item: null,
      cancelRequested: false,
      queue: null,
      el: li,
    };
    row.ui = rowUi(li);
    row.ui.name.textContent = name;
    row.ui.size.textContent = size == null ? 'Stream' : formatBytes(size);
    row.ui.bar.setAttribute('aria-label', `Upload of ${name}`);
    row.ui.toggle.addEventListener('click', () => (row.state === 'paused' ? this.#resume(row) : this.#pause(row)));
    row.ui.retry.addEventListener('click', () => this.#retry(row));
    row.ui.cancel.addEventListener('click', () => this.#cancel(row));
    row.ui.remove.addEventListener('click', () => this.#remove(row, { focus: true }));
    for (const [button, verb] of [[row.ui.retry, 'Retry'], [row.ui.cancel, 'Cancel'], [row.ui.remove, 'Remove']]) {
      button.setAttribute('aria-label', `${verb} ${verb === 'Remove' ? '' : 'upload of '}${name}`);
    }
    this.#rows.push(row);
    parent.append(li);
    return row;
  }

  #add(file, path = null, group = null) {
    // A file of a folder is named in events and `items` by its path in the folder; its row sits
    // in the folder's list, where the folder's own name goes without saying.
    const row = this.#newRow(path ?? file.name, file.size, file, group?.list);
    row.filename = file.name;
    row.path = path;
    group?.add(row, path);
    const max = this.maxSize;
    if (Number.isNaN(max)) {
      this.#fail(row, { code: 'invalid_options', message: `max-size "${this.getAttribute('max-size')}" is not a size such as 10MB` });
    } else if (max !== undefined && file.size > max) {
      this.#fail(row, { code: 'file_too_large', message: `${file.size} bytes is over the max-size of ${max} bytes` }, `This file is larger than the ${formatBytes(max)} limit.`);
    } else if (!accepts(this.accept, file)) {
      this.#fail(row, { code: 'file_type_not_accepted', message: `${file.type || 'no type'} does not match accept="${this.accept}"` }, `This type of file is not accepted here (${this.accept}).`);
    } else {
      this.#render(row);
      this.#enqueue(row);
    }
  }

  async #enqueue(row) {
    let lib;
    try {
      lib = await loadClient();
    } catch (err) {
      this.#fail(row, { code: 'client_unavailable', message: String(err?.message ?? err) });
      return;
    }
    if (row.cancelRequested || !this.#rows.includes(row)) return;
    try {
      const queue = this.#queueFor(lib);
      const options = { filename: row.filename };
      if (row.path) options.relativePath = row.path;
      for (const [k, v] of Object.entries(row.streamOptions ?? {})) if (v != null) options[k] = v;
      const item = queue.add(row.stream ?? row.file, options);
      row.queue = queue;
      row.item = item;
      row.itemId = item.id;
      // The outcome arrives through the queue's events; a rejection must not go unhandled.
      item.promise?.catch(() => {});
      // Events the queue sent from inside add() found no row yet.
      if (item.progress) this.#onProgress(row, item.progress);
      if (item.state === 'done' && item.result) this.#onComplete(row, item.result);
      else if (item.state === 'error' && item.error) this.#onError(row, item.error);
      else if (item.state) this.#onState(row, item.state);
      if (row.pauseRequested) item.pause();
    } catch (err) {
      this.#fail(row, err);
    }
  }

  /** The row of a queue's item (item ids are unique within one queue only). */
  #rowOf(queue, item) { return this.#rows.find((r) => r.queue === queue && r.itemId === item.id); }

  #onState(row, state) {
    // `done` and `error` arrive with their result or error in item-complete / item-error.
    if (!row || row.state === state || state === 'done' || state === 'error') return;
    const was = row.state;
    row.state = state;
    if (state === 'uploading' && !row.started) {
      row.started = true;
      this.#emit('upload-start', { id: row.id, name: row.name, size: row.size, file: row.file });
    }
    if (state === 'cancelled') {
      if (!row.group) this.#announce(`Upload of ${row.name} cancelled.`);
      this.#emit('upload-cancel', { id: row.id, name: row.name, size: row.size });
    }
    if (state !== 'error') row.error = null;
    if (was !== state) this.#render(row);
    this.#refresh();
  }

  #onProgress(row, progress) {
    if (!row || !progress) return;
    row.progress = progress;
    if (row.stream && progress.bytesTotal != null) this.#sized(row, progress.bytesTotal);
    this.#render(row);
    this.#emit('upload-progress', {
      id: row.id,
      name: row.name,
      bytesSent: progress.bytesSent,
      bytesTotal: progress.bytesTotal,
      fraction: progress.bytesTotal ? progress.bytesSent / progress.bytesTotal : 0,
      speed: progress.speed,
      eta: progress.eta,
      phase: progress.phase,
    });
  }

  /** A stream ended: its row has a size. */
  #sized(row, size) {
    row.size = size;
    row.ui.size.textContent = formatBytes(size);
  }

  #onComplete(row, result) {
    if (!row) return;
    if (row.stream) this.#sized(row, result.size);
    row.state = 'done';
    row.result = result;
    row.progress = { ...(row.progress ?? {}), bytesSent: row.size, bytesTotal: row.size, phase: 'done', eta: null };
    this.#render(row);
    // A folder is announced as a whole.
    if (!row.group) this.#announce(`${row.name} uploaded.`);
    this.#emit('upload-complete', {
      id: row.id,
      key: result.key,
      bucket: result.bucket,
      location: result.location,
      etag: result.etag,
      size: result.size,
      checksum: result.checksum ?? null,
      receipt: result.receipt ?? null,
      fileName: row.name,
    });
    // Finished while its folder was being cancelled: withdrawn like the folder's other files.
    if (row.group?.cancelled) row.group.withdraw(row);
    this.#refresh();
  }

  #onError(row, error) {
    if (!row) return;
    if (error?.code === 'cancelled' || error?.code === 'aborted') return; // item-state says it
    this.#fail(row, error);
  }

  #fail(row, error, sentence) {
    row.state = 'error';
    row.error = { code: error?.code ?? 'unknown', message: error?.message ?? String(error), status: error?.status, part: error?.part };
    if (sentence) row.error.sentence = sentence;
    this.#render(row);
    const text = this.#sentence(row.error);
    this.#announce(`${row.name} could not be uploaded. ${text}`);
    this.#emit('upload-error', {
      id: row.id,
      name: row.name,
      code: row.error.code,
      message: text,
      detail: row.error.message,
      status: row.error.status,
      error,
    });
    this.#refresh();
  }

  /** The plain sentence for an error: the page's override, the status-specific text, the code's. */
  #sentence(error) {
    const { code, status } = error;
    if (this.#messages[code]) return this.#messages[code];
    if (error.sentence) return error.sentence;
    if (code === 'http_error' && status >= 500) return MESSAGES.http_error_server;
    if (code === 'http_error' && (status === 401 || status === 403)) return MESSAGES.http_error_auth;
    return MESSAGES[code] ?? MESSAGES.unknown;
  }

  #pause(row) {
    if (row.item) row.item.pause();
    else row.pauseRequested = true;
  }

  #resume(row) {
    row.pauseRequested = false;
    row.item?.resume();
  }

  #cancel(row) {
    if (row.item) {
      row.item.cancel();
      return;
    }
    // Not handed to the queue yet (the wasm is still loading): nothing was stored.
    row.cancelRequested = true;
    row.state = 'cancelled';
    if (!row.group) this.#announce(`Upload of ${row.name} cancelled.`);
    this.#emit('upload-cancel', { id: row.id, name: row.name, size: row.size });
    this.#render(row);
    this.#refresh();
  }

  #retry(row) {
    row.error = null;
    row.progress = null;
    row.started = false; // a retry is announced with upload-start again
    // The same queue with the same options retries the item itself: a multipart upload continues
    // with the parts already stored, and the item gets a new promise. After a change of options
    // (a fresh token in `headers`, say) the file goes to the current queue as a new item; the
    // client's resume record still spares the parts already stored.
    if (row.item && row.queue === this.#queue && JSON.stringify(this.#options()) === this.#queueOptionsKey) {
      row.state = 'queued';
      this.#render(row);
      row.item.retry();
      row.item.promise?.catch(() => {});
    } else {
      row.state = 'queued';
      row.item = null;
      row.queue = null;
      row.itemId = undefined;
      this.#render(row);
      this.#enqueue(row);
    }
    this.#refresh();
  }

  #remove(row, { focus }) {
    if (ACTIVE.has(row.state)) {
      // Removing an unfinished file cancels it; its own cancelled event will find no row.
      row.cancelRequested = true;
      row.item?.cancel();
      this.#emit('upload-cancel', { id: row.id, name: row.name, size: row.size });
    }
    const i = this.#rows.indexOf(row);
    if (i < 0) return;
    const hadFocus = row.el.contains(this.#root.activeElement);
    // Focus goes to the row that takes this one's place (the last file of a folder takes the
    // folder with it), else the drop zone.
    const { group } = row;
    const near = beside(row.el) ?? (group && beside(group.el));
    this.#rows.splice(i, 1);
    row.el.remove();
    group?.forget(row);
    this.#renderSummary();
    if (focus || hadFocus) this.#focusNear(near);
    this.#refresh();
  }

  #focusNear(li) { ((li?.isConnected && this.#firstButton(li)) || this.#dropzone).focus(); }

  #firstButton(li) { return li.querySelector(':scope > .top button:not([hidden])'); }

  /** A keyboard user whose button (`focused`) in row `li` just disappeared stays in the row. */
  #keepFocus(li, focused) {
    if (focused?.hidden && focused.closest('.item') === li) (this.#firstButton(li) ?? this.#dropzone).focus();
  }

  /** What a folder's row (widget-folders.js) may use of the element and do to its files' rows. */
  get #folderHost() {
    this.#host ??= {
      ROW, rowUi, STATUS, ACTIVE, retryable, beside, formatBytes,
      list: this.#list,
      id: () => nextRowId++,
      pause: (r) => this.#pause(r),
      resume: (r) => this.#resume(r),
      retry: (r) => this.#retry(r),
      cancel: (r) => this.#cancel(r),
      remove: (r) => this.#remove(r, { focus: false }),
      render: (r) => this.#render(r),
      emit: (type, detail) => this.#emit(type, detail),
      refresh: () => this.#refresh(),
      announce: (text) => this.#announce(text),
      focused: () => this.#root.activeElement,
      keepFocus: (li, focused) => this.#keepFocus(li, focused),
      focusNear: (li) => this.#focusNear(li),
      disabled: () => this.#isDisabled,
    };
    return this.#host;
  }

  /** Updates one row's text, bar, buttons and labels from its state. */
  #render(row) {
    const { ui, state, progress } = row;
    const focused = this.#root.activeElement;
    row.el.dataset.state = state;
    // `::part()` takes no attribute selectors: the state is a part name too (`::part(item-error)`).
    row.el.setAttribute('part', `item item-${state}`);
    const total = progress?.bytesTotal || row.size;
    const sent = state === 'done' ? total : (progress?.bytesSent ?? 0);
    const percent = total ? Math.floor((sent / total) * 100) : (state === 'done' ? 100 : 0);
    // A stream still being read: how much it sent, of a total not known yet.
    const open = row.size == null;
    ui.fill.style.width = `${percent}%`;
    if (open) ui.bar.removeAttribute('aria-valuenow');
    else ui.bar.setAttribute('aria-valuenow', String(percent));
    const moving = state === 'uploading' && progress && progress.phase !== 'offline';
    let status = STATUS[state] ?? '';
    if (state === 'uploading' && progress?.phase === 'offline') status = 'Waiting for the network';
    if (state === 'error') status = this.#sentence(row.error);
    ui.status.textContent = status;
    const over = state === 'done' || state === 'error' || state === 'cancelled';
    ui.percent.textContent = over ? '' : open ? formatBytes(sent) : `${percent} %`;
    ui.speed.textContent = moving && progress.speed > 0 ? `${formatBytes(progress.speed)}/s` : '';
    ui.eta.textContent = moving ? formatEta(progress.eta) : '';
    ui.bar.setAttribute('aria-valuetext', [
      status,
      state === 'done' ? formatBytes(row.size)
        : open ? `${formatBytes(sent)} sent, the total not known yet`
          : `${percent} %, ${formatBytes(sent)} of ${formatBytes(total)}`,
      ui.speed.textContent, ui.eta.textContent,
    ].filter(Boolean).join(', '));

    const paused = state === 'paused';
    ui.toggle.textContent = paused ? 'Resume' : 'Pause';
    ui.toggle.setAttribute('aria-label', `${paused ? 'Resume' : 'Pause'} upload of ${row.name}`);
    ui.toggle.setAttribute('part', `button ${paused ? 'resume' : 'pause'}-button`);
    ui.toggle.hidden = !(state === 'queued' || state === 'uploading' || state === 'paused');
    ui.cancel.hidden = !ACTIVE.has(state);
    ui.retry.hidden = !retryable(row);
    ui.remove.hidden = ACTIVE.has(state);
    for (const b of [ui.toggle, ui.cancel, ui.retry, ui.remove]) b.disabled = this.#isDisabled && b !== ui.remove;

    if (state === 'error') {
      const e = row.error;
      ui.code.textContent = [e.code, e.status && `HTTP ${e.status}`, e.message]
        .filter(Boolean).join(' · ');
      ui.detail.hidden = false;
    } else {
      ui.detail.hidden = true;
    }
    this.#keepFocus(row.el, focused);
    row.group?.render();
    this.#renderSummary();
  }

  /** With two files or more, one line for all of them: how many are done, and the bytes. */
  #renderSummary() {
    const rows = this.#rows;
    this.#summary.hidden = rows.length < 2;
    if (rows.length < 2) return;
    const count = (s) => rows.filter((r) => r.state === s).length;
    const parts = [`${count('done')} of ${rows.length - count('cancelled')} uploaded`];
    if (count('error')) parts.push(`${count('error')} failed`);
    if (rows.some((r) => ACTIVE.has(r.state))) {
      const { bytesSent, bytesTotal, fraction } = this.progress;
      const speed = rows.reduce((sum, r) => sum + (r.state === 'uploading' ? (r.progress?.speed ?? 0) : 0), 0);
      parts.push(`${Math.floor(fraction * 100)} %`);
      if (speed > 0) parts.push(`${formatBytes(speed)}/s`, bytesTotal == null ? '' : formatEta((bytesTotal - bytesSent) / speed));
    }
    this.#summary.textContent = parts.filter(Boolean).join(' · ');
  }

  /** Recomputes the element's state, form value and validity after any change. */
  #refresh() {
    const rows = this.#rows;
    const has = (s) => rows.some((r) => r.state === s);
    const active = rows.some((r) => ACTIVE.has(r.state));
    let state = 'idle';
    if (has('uploading') || has('queued') || has('completing')) state = 'uploading';
    else if (has('paused')) state = 'paused';
    else if (has('error')) state = 'error';
    else if (has('done')) state = 'done';
    if (this.getAttribute('state') !== state) this.setAttribute('state', state);
    try {
      for (const s of ['idle', 'uploading', 'paused', 'error', 'done']) {
        if (s === state) this.#internals.states.add(s); else this.#internals.states.delete(s);
      }
    } catch { /* CustomStateSet without plain names (older engines): the attribute still says it */ }

    const done = rows.filter((r) => r.state === 'done');
    const name = this.name;
    if (name && done.length > 0) {
      const data = new FormData();
      for (const r of done) data.append(name, this.#valueOf(r.result));
      const restore = done.map((r) => ({
        name: r.name,
        size: r.size,
        key: r.result.key,
        bucket: r.result.bucket,
        location: r.result.location,
        etag: r.result.etag,
        receipt: r.result.receipt ?? null,
      }));
      this.#internals.setFormValue(data, JSON.stringify(restore));
    } else {
      this.#internals.setFormValue(null);
    }

    const failed = rows.filter((r) => r.state === 'error').length;
    if (active) {
      this.#internals.setValidity({ customError: true }, 'Wait until the uploads finish, or cancel them.', this.#dropzone);
    } else if (failed) {
      this.#internals.setValidity({ customError: true },
        `${failed === 1 ? 'A file' : `${failed} files`} could not be uploaded: retry or remove ${failed === 1 ? 'it' : 'them'}.`,
        this.#dropzone);
    } else if (this.required && done.length === 0) {
      this.#internals.setValidity({ valueMissing: true }, this.multiple ? 'Choose files to upload.' : 'Choose a file to upload.', this.#dropzone);
    } else {
      this.#internals.setValidity({});
    }

    if (this.#busy && !active) {
      const count = (s) => rows.filter((r) => r.state === s).length;
      const summary = { keys: this.keys, done: count('done'), failed: count('error'), cancelled: count('cancelled') };
      if (rows.length > 1) {
        this.#announce(`Uploads finished: ${summary.done} uploaded${summary.failed ? `, ${summary.failed} failed` : ''}.`);
      }
      this.#emit('queue-complete', summary);
    }
    this.#busy = active;
  }

  #announce(text) {
    const p = document.createElement('p');
    p.textContent = text;
    this.#live.append(p);
    while (this.#live.childElementCount > 5) this.#live.firstElementChild.remove();
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

if (!customElements.get('s3-direct-upload')) customElements.define('s3-direct-upload', S3DirectUploadElement);
