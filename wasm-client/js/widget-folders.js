// Folders on <s3-direct-upload> (widget.js): the walk of a dropped folder, and the row that shows a
// chosen or dropped folder as one group — how many of its files are done, one bar over their bytes,
// buttons acting on all of them, its files' own rows in a collapsed list below it.
//
// The widget imports this module the first time a folder is chosen or dropped, so a page that
// takes files only never downloads it. The files' rows are the element's own: a folder reads them
// and acts on them through `host`, the element's side, which lends the row template and helpers it
// shares (`ROW`, `rowUi`, `STATUS`, `ACTIVE`, `retryable`, `beside`, `formatBytes`, `id()`) and
// what it does to a row (`pause`, `resume`, `retry`, `cancel`, `remove`, `render`, `emit`) or to
// itself (`refresh`, `announce`, `focused`, `keepFocus`, `focusNear`, `disabled`).

/**
 * The files of a drop's `entries` (`webkitGetAsEntry`), with their paths when they came in
 * folders: every folder is walked, read in batches until empty. The entries must be taken from
 * the DataTransfer during the drop event; the walk may finish after it. Resolves to
 * `{ files: [{ file, path }], empty: [folder paths] }`, `path` null for a file dropped on its own.
 */
export async function walkDrop(entries) {
  const out = { files: [], empty: [] };
  const read = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));
  const batch = (reader) => new Promise((resolve, reject) => reader.readEntries(resolve, reject));
  const walk = async (entry) => {
    const path = entry.fullPath.replace(/^\/+/, '');
    if (entry.isFile) {
      out.files.push({ file: await read(entry), path: path.includes('/') ? path : null });
      return;
    }
    const reader = entry.createReader();
    const children = [];
    for (let next = await batch(reader); next.length > 0; next = await batch(reader)) children.push(...next);
    if (children.length === 0) out.empty.push(path);
    for (const child of children) await walk(child);
  };
  for (const entry of entries) await walk(entry);
  return out;
}

/**
 * A folder's row: its name, how many of its files are done, one bar over their bytes, and
 * buttons acting on all of them; its files' own rows in a collapsed list below (`list`).
 */
export class Folder {
  #host;

  constructor(host, name) {
    this.#host = host;
    const li = document.createElement('li');
    li.className = 'item';
    li.innerHTML = `${host.ROW}<details class="files-of" part="group-files"><summary>Files</summary><ul class="list"></ul></details>`;
    Object.assign(this, { id: host.id(), name, rows: [], percent: 0, state: null, cancelled: false, el: li });
    this.list = li.querySelector('.files-of ul');
    const ui = host.rowUi(li);
    this.ui = ui;
    ui.name.textContent = name;
    ui.size.setAttribute('part', 'count');
    ui.bar.setAttribute('aria-label', `Upload of folder ${name}`);
    this.list.setAttribute('aria-label', `Files of folder ${name}`);
    ui.retry.textContent = 'Retry failed';
    const each = (test, act) => { for (const r of this.rows) if (test(r)) act(r); };
    ui.toggle.addEventListener('click', () => (this.state === 'paused'
      ? each((r) => r.state === 'paused', host.resume)
      : each((r) => r.state === 'queued' || r.state === 'uploading', host.pause)));
    ui.retry.addEventListener('click', () => each(host.retryable, host.retry));
    ui.cancel.addEventListener('click', () => this.cancel());
    ui.remove.addEventListener('click', () => this.remove());
    ui.cancel.setAttribute('aria-label', `Cancel upload of folder ${name}`);
    ui.retry.setAttribute('aria-label', `Retry the failed files of folder ${name}`);
    ui.remove.setAttribute('aria-label', `Remove folder ${name}`);
    host.list.append(li);
  }

  /** Takes a file's row, made in `list`: named by its `path` within the folder. */
  add(row, path) {
    row.group = this;
    this.rows.push(row);
    row.ui.name.textContent = path.slice(this.name.length + 1);
  }

  /** A file's row left the element: the folder counts without it, and goes with its last file. */
  forget(row) {
    this.rows.splice(this.rows.indexOf(row), 1);
    this.percent = 0;
    if (this.rows.length > 0) this.render(); else this.el.remove();
  }

  /**
   * Cancels the folder: its unfinished files are cancelled and its finished ones withdrawn from
   * the form (their objects stay in the bucket, as after Remove).
   */
  cancel() {
    this.cancelled = true;
    for (const r of this.rows) {
      if (this.#host.ACTIVE.has(r.state)) this.#host.cancel(r);
      else if (r.state !== 'cancelled') this.withdraw(r);
    }
    this.#host.refresh();
  }

  /** A finished or failed file of a cancelled folder: cancelled, so the form no longer posts it. */
  withdraw(row) {
    row.state = 'cancelled';
    row.error = null;
    this.#host.emit('upload-cancel', { id: row.id, name: row.name, size: row.size });
    this.#host.render(row);
  }

  remove() {
    const near = this.#host.beside(this.el);
    for (const r of [...this.rows]) this.#host.remove(r);
    this.#host.focusNear(near);
  }

  /** A snapshot for the element's `groups`. */
  snapshot() {
    const count = (s) => this.rows.filter((r) => r.state === s).length;
    return {
      id: this.id,
      name: this.name,
      state: this.state,
      files: this.rows.length - count('cancelled'),
      done: count('done'),
      failed: count('error'),
      fraction: this.percent / 100,
    };
  }

  /** Updates the folder's row from its files' rows. */
  render() {
    const { ui, rows, name } = this;
    const host = this.#host;
    const count = (s) => rows.filter((r) => r.state === s).length;
    const done = count('done');
    const failed = count('error');
    const files = rows.length - count('cancelled');
    let state = 'cancelled';
    if (rows.some((r) => r.state === 'queued' || r.state === 'uploading' || r.state === 'completing')) state = 'uploading';
    else if (count('paused')) state = 'paused';
    else if (failed) state = 'error';
    else if (done) state = 'done';
    let sent = 0;
    let total = 0;
    for (const r of rows) {
      if (r.state === 'cancelled') continue;
      total += r.size;
      sent += r.state === 'done' ? r.size : Math.min(r.progress?.bytesSent ?? 0, r.size);
    }
    // A retried or re-sent part takes bytes back; the bar holds its place. 100 % means every file.
    const all = files > 0 && done === files;
    this.percent = all ? 100 : Math.max(this.percent, Math.min(99, total ? Math.floor((sent / total) * 100) : 0));
    const { percent } = this;
    if (this.state && state !== this.state) {
      if (state === 'done') host.announce(`Folder ${name} uploaded: ${done} files.`);
      if (state === 'error') {
        host.announce(`Folder ${name}: ${failed} of ${files} files could not be uploaded.`);
        this.list.parentElement.open = true; // shows which
      }
      if (state === 'cancelled') host.announce(`Upload of folder ${name} cancelled.`);
    }
    this.state = state;
    const focused = host.focused();
    this.el.dataset.state = state;
    this.el.setAttribute('part', `item group group-${state}`);
    const of = state === 'cancelled' ? rows.length : files;
    const counted = `${done} of ${of} ${of === 1 ? 'file' : 'files'}${failed ? `, ${failed} failed` : ''}`;
    ui.size.textContent = counted;
    ui.fill.style.width = `${percent}%`;
    ui.bar.setAttribute('aria-valuenow', String(percent));
    const status = state === 'error' ? `${failed === 1 ? 'A file' : `${failed} files`} could not be uploaded` : host.STATUS[state];
    ui.status.textContent = status;
    const moving = state === 'uploading' || state === 'paused';
    ui.percent.textContent = moving ? `${percent} %` : '';
    ui.bar.setAttribute('aria-valuetext', [status, counted, moving && `${percent} %, ${host.formatBytes(sent)} of ${host.formatBytes(total)}`]
      .filter(Boolean).join(', '));
    const paused = state === 'paused';
    ui.toggle.textContent = paused ? 'Resume' : 'Pause';
    ui.toggle.setAttribute('aria-label', `${paused ? 'Resume' : 'Pause'} upload of folder ${name}`);
    ui.toggle.setAttribute('part', `button ${paused ? 'resume' : 'pause'}-button`);
    ui.toggle.hidden = !moving;
    ui.cancel.hidden = !moving;
    ui.retry.hidden = !rows.some(host.retryable);
    ui.remove.hidden = moving;
    for (const b of [ui.toggle, ui.cancel, ui.retry]) b.disabled = host.disabled();
    host.keepFocus(this.el, focused);
  }
}
