// Folders on the <s3-direct-upload> element and the JS API, in Chromium on the embedded store:
// a tree of 3 levels and 50 files with Unicode and awkward names chosen through the folder
// picker (`folders`: <input webkitdirectory>) is stored with every file under its sanitised path
// within the folder, shown as one group row counting to "50 of 50 files", and the form posts one
// value per file, and the widget's folder module is loaded then, once, not before; the same tree
// dropped on the element is stored the same way; a folder dropped on the element is walked (empty
// folders noted, not dropped silently); a dropped folder's group pauses (nothing moves), resumes
// and finishes, and a group cancelled half-way leaves no upload behind and no value in the form;
// with the folder module unreachable a dropped folder is noted, not lost silently; a path that
// escapes the chosen folder is refused by the server. Screenshots of a folder's row (done, paused, with a failed
// file) go where the engine tests put theirs: tests/artifacts/engines/chromium-widget-folder*.png.
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { launchBrowser } from '../lib/browser.mjs';
import { MiB, tempDir } from '../lib/files.mjs';
import { objectSha256, s3Client } from '../lib/s3.mjs';
import { ARTIFACTS, shot } from '../lib/engine-scenarios.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';
import { createHash } from 'node:crypto';

const bucket = 's3-direct';

/** A screenshot of the element, named as the engine tests name theirs (`chromium-widget-folder-error.png`). */
async function snap(page, what) {
  await page.mouse.move(0, 0); // no hover style left on the button just clicked
  await page.locator('s3-direct-upload').screenshot({ path: shot('chromium', 'embedded', what), animations: 'disabled' });
}

/**
 * Drops `tree` on the page's element as the browser delivers folders: DataTransfer items whose
 * entries are walked, read in batches (the last one empty). No driver can drop a real folder, so
 * the entries are built in the page, over real Files. `tree` is a list of `{ name, text }` or
 * `{ name, size, fill? }` (a file of `size` bytes of `fill`, else zeros) and `{ name, children }`
 * (a folder).
 */
function drop(page, tree) {
  return page.evaluate((top) => {
    const entry = (dir, node) => {
      const fullPath = `${dir}/${node.name}`;
      if (!node.children) {
        const file = new File([node.text ?? new Uint8Array(node.size).fill(node.fill ?? 0)], node.name, { type: 'text/plain' });
        return { isFile: true, isDirectory: false, name: node.name, fullPath, file: (ok) => ok(file) };
      }
      const children = node.children.map((child) => entry(fullPath, child));
      return {
        isFile: false,
        isDirectory: true,
        name: node.name,
        fullPath,
        createReader: () => {
          const batches = [children.slice(0, 2), children.slice(2), []];
          return { readEntries: (ok) => setTimeout(() => ok(batches.shift() ?? []), 0) };
        },
      };
    };
    const event = new Event('drop', { bubbles: true, cancelable: true });
    Object.defineProperty(event, 'dataTransfer', {
      value: {
        types: ['Files'],
        files: [],
        items: top.map((node) => ({ kind: 'file', webkitGetAsEntry: () => entry('', node) })),
      },
    });
    document.querySelector('s3-direct-upload').dispatchEvent(event);
  }, tree);
}

/** What the row of folder `name` shows: its count, state, bar and buttons (by their labels). */
function groupRow(page, name) {
  return page.evaluate((n) => {
    const row = [...document.querySelector('s3-direct-upload').shadowRoot.querySelectorAll('[part~=group]')]
      .find((li) => li.querySelector('.name').textContent === n);
    if (!row) return null;
    const bar = row.querySelector(':scope > [role=progressbar]');
    return {
      state: row.dataset.state,
      count: row.querySelector('[part=count]').textContent,
      status: row.querySelector(':scope > .stats [part=status]').textContent,
      valuenow: Number(bar.getAttribute('aria-valuenow')),
      valuetext: bar.getAttribute('aria-valuetext'),
      label: bar.getAttribute('aria-label'),
      buttons: [...row.querySelectorAll(':scope > .top button')].filter((b) => !b.hidden).map((b) => b.getAttribute('aria-label')),
      files: row.querySelectorAll('[part=group-files] [part~=item]').length,
      open: row.querySelector('[part=group-files]').open,
    };
  }, name);
}

/**
 * Holds every PUT of a part past the first of any file (a small file's single PUT passes) while
 * `holding`; counts the PUTs that reached the network.
 */
async function holdLaterParts(page) {
  const hold = { holding: true, held: [], puts: 0 };
  await page.route((url) => url.searchParams.has('partNumber') || url.searchParams.has('X-Amz-Signature'), (route) => {
    const request = route.request();
    if (request.method() !== 'PUT') return route.continue();
    hold.puts += 1;
    const part = Number(new URL(request.url()).searchParams.get('partNumber') ?? 1);
    if (hold.holding && part > 1) {
      hold.held.push(route);
      return undefined;
    }
    return route.continue();
  });
  hold.release = () => {
    hold.holding = false;
    return Promise.allSettled(hold.held.splice(0).map((r) => r.abort()));
  };
  return hold;
}

/** Every file below `dir`, as paths relative to it. */
async function walk(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** Waits until every item of folder `group` passes `predicate` (a function run in the page). */
function waitForGroupItems(page, group, predicate, timeout = 60_000) {
  return page.waitForFunction(([g, body]) => {
    const items = document.querySelector('s3-direct-upload').items.filter((i) => i.group === g);
    // eslint-disable-next-line no-new-func
    return items.length > 0 && items.every((i) => new Function('i', `return (${body})(i)`)(i)) ? items : null;
  }, [group, predicate.toString()], { timeout, polling: 50 }).then((h) => h.jsonValue());
}

/**
 * Writes the tree: `Holiday 🎉/` with 3 levels, 50 files of 1–9 KB; returns the folder and each
 * file's path within it (as the browser names it) with its SHA-256.
 */
async function writeTree() {
  const root = path.join(await tempDir('s3-direct-folder-'), 'Holiday 🎉');
  const dirs = ['', 'día 1', 'día 1/.thumbs', 'día 1/.thumbs/small ü', 'notes+drafts%20'];
  const names = (i) => [`IMG ${i}.jpg`, `ñ-${i} 日本.txt`, `..${i}.bin`, `a b+c%20${i}`, `${'long-'.repeat(30)}${i}.dat`];
  const files = [];
  for (let i = 0; i < 50; i += 1) {
    const dir = dirs[i % dirs.length];
    const name = names(i)[Math.floor(i / dirs.length) % 5];
    const rel = dir ? `${dir}/${name}` : name;
    const bytes = Buffer.alloc(1000 + (i * 173) % 8000, i);
    await mkdir(path.join(root, dir), { recursive: true });
    await writeFile(path.join(root, rel), bytes);
    files.push({ rel: `Holiday 🎉/${rel}`, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
  }
  await mkdir(path.join(root, 'empty'), { recursive: true });
  return { root, files };
}

/** The path the server keeps for `rel`: each segment cleaned as keys.rs does (leading dots go). */
const sanitised = (rel) => rel.split('/').map((s) => s.replace(/^[.\s]+/, '')).join('/');

/** `files` (from writeTree) as a tree to drop, each file's bytes as writeTree wrote them. */
function dropTree(files) {
  const top = [];
  for (const [i, f] of files.entries()) {
    const segments = f.rel.split('/');
    let level = top;
    for (const dir of segments.slice(0, -1)) {
      let node = level.find((n) => n.name === dir && n.children);
      if (!node) level.push(node = { name: dir, children: [] });
      level = node.children;
    }
    level.push({ name: segments.at(-1), size: f.size, fill: i });
  }
  top[0].children.push({ name: 'empty', children: [] });
  return top;
}

describe('folders', () => {
  let browser;
  let server;
  let s3;
  let tree;

  before(async () => {
    [browser, server, tree] = await Promise.all([launchBrowser(), startServer(), writeTree()]);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
    await mkdir(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function openForm({ partSize } = {}) {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err));
    page.requested = [];
    page.on('request', (r) => page.requested.push(new URL(r.url()).pathname));
    await page.addInitScript(() => {
      window.cancelled = [];
      document.addEventListener('upload-cancel', (e) => window.cancelled.push(e.detail.name));
    });
    await page.goto(`${server.url}/form.html`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    if (partSize) await page.evaluate((size) => document.querySelector('s3-direct-upload').setAttribute('part-size', size), partSize);
    page.pageErrors = errors;
    return page;
  }

  /** The values the form would submit under the element's name. */
  const posted = (page) => page.evaluate(() => new FormData(document.querySelector('#form')).getAll('files'));

  const finished = (page, count) => page.waitForFunction((n) => {
    const el = document.querySelector('s3-direct-upload');
    const items = el.items;
    if (items.some((i) => i.state === 'error')) return items;
    return items.length === n && items.every((i) => i.state === 'done') ? items : null;
  }, count, { timeout: 120_000, polling: 100 }).then((h) => h.jsonValue());

  /** Each of the tree's files has a done row and is stored, byte for byte, under its sanitised path. */
  async function assertStoredUnderPaths(items) {
    const byPath = new Map(items.map((i) => [i.path, i]));
    for (const f of tree.files) {
      const item = byPath.get(f.rel);
      assert.ok(item, `a row for ${f.rel}`);
      const key = item.result.key;
      // The folders whole; the name cut to the store's key limit (the embedded store's is 126
      // bytes for this bucket), keeping its extension.
      const want = sanitised(f.rel);
      const folders = want.slice(0, want.lastIndexOf('/') + 1);
      const name = want.slice(folders.length);
      const kept = key.slice(key.lastIndexOf('/') + 1);
      assert.ok(key.includes(`/${folders}`) && key.endsWith(`/${folders}${kept}`), `${f.rel} → ${key}`);
      const ext = path.extname(name);
      assert.ok(kept === name || (kept.endsWith(ext) && name.startsWith(kept.slice(0, kept.length - ext.length))),
        `${f.rel} → ${key}`);
      assert.deepEqual(await objectSha256(s3, bucket, key), { sha256: f.sha256, size: f.size });
    }
  }

  it('a folder chosen through the picker is one group row counting to 50 of 50; stored file by file under its paths; the form posts one value each', async () => {
    const page = await openForm();
    try {
      await page.evaluate(() => document.querySelector('s3-direct-upload').setAttribute('folders', ''));
      assert.equal(await page.evaluate(() => document.querySelector('s3-direct-upload')
        .shadowRoot.querySelector('input[type=file]').webkitdirectory), true, 'the picker chooses folders');
      // Every value the group's bar takes, with how many files were done when it took it.
      await page.evaluate(() => {
        const el = document.querySelector('s3-direct-upload');
        window.groupBar = [];
        new MutationObserver((records) => {
          for (const r of records) {
            if (r.target.matches('[part~=group] > [role=progressbar]')) {
              const [group] = el.groups;
              window.groupBar.push({ now: Number(r.target.getAttribute('aria-valuenow')), done: group.done, files: group.files });
            }
          }
        }).observe(el.shadowRoot, { subtree: true, attributes: true, attributeFilter: ['aria-valuenow'] });
      });
      const folderModule = () => page.requested.filter((p) => p.includes('widget-'));
      assert.deepEqual(folderModule(), [], 'the folder module waits for a folder');
      await page.setInputFiles('s3-direct-upload input[type=file]', tree.root);
      const items = await finished(page, tree.files.length);
      assert.deepEqual(folderModule(), ['/pkg/widget-folders.js'], 'the first folder loads the folder module, once');
      assert.deepEqual(items.filter((i) => i.state !== 'done').map((i) => [i.name, i.error?.detail]), []);
      assert.ok(items.every((i) => i.group === 'Holiday 🎉'), 'every file belongs to the folder');

      // One row for the folder, its files inside it (collapsed), and no row of their own.
      const top = await page.evaluate(() => [...document.querySelector('s3-direct-upload').shadowRoot
        .querySelector('[part=list]').children].map((li) => li.getAttribute('part')));
      assert.deepEqual(top, ['item group group-done']);
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').groups[0]?.state === 'done');
      assert.deepEqual(await groupRow(page, 'Holiday 🎉'), {
        state: 'done',
        count: '50 of 50 files',
        status: 'Uploaded',
        valuenow: 100,
        valuetext: 'Uploaded, 50 of 50 files',
        label: 'Upload of folder Holiday 🎉',
        buttons: ['Remove folder Holiday 🎉'],
        files: 50,
        open: false,
      });
      assert.deepEqual(await page.evaluate(() => document.querySelector('s3-direct-upload').groups.map(({ id, ...g }) => g)),
        [{ name: 'Holiday 🎉', state: 'done', files: 50, done: 50, failed: 0, fraction: 1 }]);
      const bar = await page.evaluate(() => window.groupBar);
      assert.ok(bar.length > 1, `the bar moved: ${JSON.stringify(bar)}`);
      for (let i = 1; i < bar.length; i += 1) assert.ok(bar[i].now >= bar[i - 1].now, `never backwards: ${JSON.stringify(bar)}`);
      for (const b of bar) assert.ok(b.now < 100 || b.done === b.files, `100 % only once every file is done: ${JSON.stringify(b)}`);
      assert.equal(bar.at(-1).now, 100);
      await snap(page, 'widget-folder-done');

      await assertStoredUnderPaths(items);
      assert.equal((await posted(page)).length, tree.files.length, 'one value per file');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('the same 50-file tree dropped on the element: one group, every file under its sanitised path, the empty folder noted', async () => {
    const page = await openForm();
    try {
      await drop(page, dropTree(tree.files));
      const items = await finished(page, tree.files.length);
      assert.deepEqual(items.filter((i) => i.state !== 'done').map((i) => [i.name, i.error?.detail]), []);
      assert.ok(items.every((i) => i.group === 'Holiday 🎉'), 'every file belongs to the folder');
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').groups[0]?.state === 'done');
      assert.equal((await groupRow(page, 'Holiday 🎉')).count, '50 of 50 files');
      await assertStoredUnderPaths(items);
      assert.equal((await posted(page)).length, tree.files.length, 'one value per file');
      const note = await page.evaluate(() => document.querySelector('s3-direct-upload')
        .shadowRoot.querySelector('[part=notes]').textContent);
      assert.match(note, /Holiday 🎉\/empty is empty/);
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('a dropped folder is walked, each file keeps its path, and an empty folder is noted', async () => {
    const page = await openForm();
    try {
      await drop(page, [
        { name: 'drop', children: [
          { name: 'a.txt', text: 'a' }, { name: 'b ü.txt', text: 'b' },
          { name: 'sub', children: [{ name: 'c.txt', text: 'c' }] }, { name: 'empty', children: [] },
        ] },
        { name: 'loose.txt', text: 'l' },
      ]);
      const items = await finished(page, 4);
      assert.deepEqual(items.map((i) => [i.name, i.path]).sort(), [
        ['drop/a.txt', 'drop/a.txt'], ['drop/b ü.txt', 'drop/b ü.txt'], ['drop/sub/c.txt', 'drop/sub/c.txt'], ['loose.txt', null],
      ]);
      for (const item of items) {
        assert.ok(item.result.key.endsWith(`/${item.path ?? item.name}`), item.result.key);
      }
      const note = await page.evaluate(() => document.querySelector('s3-direct-upload')
        .shadowRoot.querySelector('[part=notes]').textContent);
      assert.match(note, /drop\/empty is empty/);
      // The folder is one row with its files inside; the loose file keeps a row of its own.
      assert.deepEqual(items.map((i) => i.group).sort(), ['drop', 'drop', 'drop', null]);
      const top = await page.evaluate(() => [...document.querySelector('s3-direct-upload').shadowRoot
        .querySelector('[part=list]').children].map((li) => [li.getAttribute('part'), li.querySelector('.name').textContent]));
      assert.deepEqual(top, [['item group group-done', 'drop'], ['item item-done', 'loose.txt']]);
      assert.equal((await groupRow(page, 'drop')).count, '3 of 3 files');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it("a dropped folder's group pauses all its files (nothing moves while paused) and resumes to completion", async () => {
    const page = await openForm({ partSize: '5MiB' });
    const hold = await holdLaterParts(page);
    try {
      // Three files of three parts: their first parts pass, the later ones are held, so the
      // pause comes with the folder part-way.
      const sizes = [11 * MiB, 12 * MiB, 13 * MiB];
      await drop(page, [{ name: 'big', children: sizes.map((size, i) => ({ name: `part-way ${i}.bin`, size })) }]);
      await page.waitForFunction(() => {
        const [group] = document.querySelector('s3-direct-upload').groups;
        return group?.fraction > 0;
      }, null, { timeout: 60_000, polling: 50 });
      assert.ok(hold.held.length > 0, 'later parts are held');
      // By keyboard: the folder's Pause is a real button, and turns into Resume under the focus.
      await page.getByRole('button', { name: 'Pause upload of folder big' }).focus();
      await page.keyboard.press('Space');
      await waitForGroupItems(page, 'big', (i) => i.state === 'paused');
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').shadowRoot.activeElement
        ?.getAttribute('aria-label') === 'Resume upload of folder big');
      let row = await groupRow(page, 'big');
      assert.equal(row.state, 'paused');
      assert.equal(row.status, 'Paused');
      assert.equal(row.count, '0 of 3 files');
      assert.ok(row.valuenow > 0 && row.valuenow < 100, `part-way: ${row.valuenow}`);
      assert.deepEqual(row.buttons, ['Resume upload of folder big', 'Cancel upload of folder big']);
      await snap(page, 'widget-folder');

      // Nothing is held any more: a part sent while paused would pass and be counted.
      await hold.release();
      const before = { puts: hold.puts, items: await page.evaluate(() => document.querySelector('s3-direct-upload').items) };
      await page.waitForTimeout(1500); // a window to watch, not an ordering: nothing may happen in it
      const still = await page.evaluate(() => document.querySelector('s3-direct-upload').items);
      assert.equal(hold.puts, before.puts, 'no PUT while paused');
      assert.deepEqual(still.map((i) => [i.state, i.progress?.bytesConfirmed, i.progress?.partsDone]),
        before.items.map((i) => [i.state, i.progress?.bytesConfirmed, i.progress?.partsDone]), 'no bytes moved');

      await page.keyboard.press('Enter');
      const items = await finished(page, 3);
      assert.deepEqual(items.map((i) => [i.state, i.size]), sizes.map((size) => ['done', size]));
      row = await groupRow(page, 'big');
      assert.equal(row.count, '3 of 3 files');
      assert.equal(row.valuenow, 100);
      for (const i of items) {
        assert.equal((await objectSha256(s3, bucket, i.result.key)).size, i.size);
      }
      assert.equal((await posted(page)).length, 3, 'one value per file');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await hold.release();
      await page.close();
    }
  });

  it('a group cancelled half-way leaves no upload behind and none of its values in the form', async () => {
    const page = await openForm({ partSize: '5MiB' });
    const hold = await holdLaterParts(page);
    try {
      await drop(page, [
        { name: 'gone', children: [
          { name: 'tiny.txt', text: 'finished before the cancel' },
          ...[0, 1, 2].map((i) => ({ name: `big ${i}.bin`, size: 11 * MiB })),
        ] },
        { name: 'kept.txt', text: 'a loose file' },
      ]);
      // Half-way: the small file and the loose one are done, every big one has a part stored
      // and its later parts held.
      await page.waitForFunction(() => {
        const items = document.querySelector('s3-direct-upload').items;
        return items.length === 5 && items.every((i) => i.state === 'done' || (i.progress?.partsDone ?? 0) >= 1);
      }, null, { timeout: 60_000, polling: 50 });
      assert.equal((await posted(page)).length, 2, 'the finished files are in the form');
      assert.ok(hold.held.length > 0, 'later parts are held');

      await page.getByRole('button', { name: 'Cancel upload of folder gone' }).click();
      const items = await waitForGroupItems(page, 'gone', (i) => i.state === 'cancelled');
      await hold.release();
      const kept = await page.evaluate(() => document.querySelector('s3-direct-upload').items.find((i) => i.name === 'kept.txt'));
      assert.equal(kept.state, 'done');
      const sent = await posted(page);
      assert.equal(sent.length, 1, 'only the loose file is posted');
      assert.deepEqual(await page.evaluate(() => document.querySelector('s3-direct-upload').keys), [kept.result.key]);
      const row = await groupRow(page, 'gone');
      assert.equal(row.state, 'cancelled');
      assert.equal(row.status, 'Cancelled');
      assert.deepEqual(row.buttons, ['Remove folder gone']);
      const events = await page.evaluate(() => window.cancelled);
      assert.deepEqual([...events].sort(), items.map((i) => i.name).sort(), 'an upload-cancel for each of its files');

      // The big files were never completed and their multipart uploads are gone; the small one,
      // finished before the cancel, stays stored (as after Remove) but is no longer posted.
      const files = await walk(server.dataDir);
      assert.deepEqual(files.filter((f) => /(^|\/)\.upload/.test(f)), [], 'no multipart upload or part remains');
      assert.deepEqual(files.filter((f) => f.includes('/gone/big')), [], 'no object of an unfinished file');
      const tiny = items.find((i) => i.name === 'gone/tiny.txt');
      assert.ok(tiny.result, 'the small file had finished');
      assert.ok(!sent.includes(tiny.result.receipt) && !sent.includes(tiny.result.key));

      // Remove takes the folder's row away and leaves the keyboard on the next row.
      await page.getByRole('button', { name: 'Remove folder gone' }).click();
      assert.equal(await groupRow(page, 'gone'), null);
      const focus = await page.evaluate(() => document.querySelector('s3-direct-upload').shadowRoot.activeElement?.getAttribute('aria-label'));
      assert.equal(focus, 'Remove kept.txt');
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await hold.release();
      await page.close();
    }
  });

  it("a folder with a failed file says how many failed, shows which inside it, and retries them", async () => {
    const page = await openForm();
    let refusing = true;
    await page.route((url) => url.pathname.endsWith('/refused.txt'), (route) => (
      refusing && route.request().method() === 'PUT'
        ? route.fulfill({ status: 400, contentType: 'application/xml', body: '<Error><Code>InvalidRequest</Code></Error>' })
        : route.continue()));
    try {
      await drop(page, [{ name: 'mixed', children: [{ name: 'fine.txt', text: 'fine' }, { name: 'refused.txt', text: 'refused' }] }]);
      await page.waitForFunction(() => document.querySelector('s3-direct-upload').groups[0]?.state === 'error',
        null, { timeout: 60_000, polling: 50 });
      let row = await groupRow(page, 'mixed');
      assert.equal(row.count, '1 of 2 files, 1 failed');
      assert.equal(row.status, 'A file could not be uploaded');
      assert.deepEqual(row.buttons, ['Retry the failed files of folder mixed', 'Remove folder mixed']);
      // The folder's list opens on a failure: the failed file's own row says which one it is.
      assert.equal(row.open, true);
      const failed = await page.evaluate(() => [...document.querySelector('s3-direct-upload').shadowRoot
        .querySelectorAll('[part=group-files] [part~=item-error] .name')].map((n) => n.textContent));
      assert.deepEqual(failed, ['refused.txt']);
      await snap(page, 'widget-folder-error');

      refusing = false;
      await page.getByRole('button', { name: 'Retry the failed files of folder mixed' }).click();
      await finished(page, 2);
      row = await groupRow(page, 'mixed');
      assert.equal(row.count, '2 of 2 files');
      assert.equal(row.valuenow, 100);

      // Removing the folder's files one by one: focus moves to the next file, then, with the
      // folder gone, to the drop zone; the form keeps only what is left.
      const focusedPart = () => page.evaluate(() => {
        const el = document.querySelector('s3-direct-upload').shadowRoot.activeElement;
        return el?.getAttribute('aria-label') ?? el?.getAttribute('part');
      });
      await page.getByRole('button', { name: 'Remove mixed/fine.txt' }).press('Enter');
      assert.equal(await focusedPart(), 'Remove mixed/refused.txt');
      assert.equal((await groupRow(page, 'mixed')).count, '1 of 1 file');
      assert.equal((await posted(page)).length, 1);
      await page.keyboard.press('Enter');
      assert.equal(await groupRow(page, 'mixed'), null, 'the folder left with its last file');
      assert.equal(await focusedPart(), 'dropzone');
      assert.deepEqual(await posted(page), []);
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('with the folder module unreachable, a dropped folder is noted as unreadable and adds nothing', async () => {
    const page = await openForm();
    try {
      await page.route((url) => url.pathname.endsWith('/widget-folders.js'), (route) => route.abort());
      await drop(page, [{ name: 'cut off', children: [{ name: 'a.txt', text: 'a' }] }]);
      const note = await page.waitForFunction(() => document.querySelector('s3-direct-upload')
        .shadowRoot.querySelector('[part=notes]').textContent || null, null, { timeout: 30_000 }).then((h) => h.jsonValue());
      assert.match(note, /^The dropped folder could not be read: /);
      assert.deepEqual(await page.evaluate(() => document.querySelector('s3-direct-upload').items), []);
      assert.deepEqual(page.pageErrors, []);
    } finally {
      await page.close();
    }
  });

  it('a relative path that leaves the chosen folder is refused by the server', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.url}/queue.html`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
      const error = await page.evaluate(async () => {
        const uploader = new window.s3direct.Uploader({ endpoint: '/s3' });
        try {
          await uploader.upload(new File(['x'], 'a.bin'), { relativePath: '../../etc/a.bin' });
          return null;
        } catch (e) {
          return { name: e.name, code: e.code };
        }
      });
      assert.deepEqual(error, { name: 'S3DirectError', code: 'invalid_filename' });
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      assert.ok(!(listed.Contents ?? []).some((o) => o.Key.includes('etc')), 'nothing stored');
    } finally {
      await page.close();
    }
  });
});
