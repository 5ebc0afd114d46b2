// Headless Debian Chromium through playwright-core (no browser download: it fails on these machines).
import { chromium } from 'playwright-core';

export const chromiumArgs = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: chromiumArgs,
  });
}

/**
 * Opens the demo page with the given query parameters and waits until the client is loaded;
 * `init` (a function) runs in the page before any of its scripts.
 */
export async function openDemo(browser, serverUrl, query = {}, { init } = {}) {
  const page = await browser.newPage();
  if (init) await page.addInitScript(init);
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  await page.goto(`${serverUrl}/?${new URLSearchParams(query)}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 }).catch((err) => {
    throw new Error(`demo page did not load: ${errors.join('; ') || err.message}`);
  });
  page.pageErrors = errors;
  return page;
}

/**
 * Run in the demo page: the row of `fileName` once it reached a final state (its state, key,
 * checksum and detail text), else null. Self-contained, so any engine's driver can send it.
 */
export function finishedRow(fileName) {
  const row = [...document.querySelectorAll('#queue .upload')]
    .find((r) => r.querySelector('.name').textContent === fileName);
  if (!row || !['done', 'error', 'cancelled'].includes(row.dataset.state)) return null;
  return {
    state: row.dataset.state,
    key: row.dataset.key ?? null,
    checksum: row.dataset.checksum ?? null,
    detail: row.querySelector('.detail').textContent,
  };
}

/** Waits for the row of `name` to reach a final state and returns its state, key and detail text. */
export async function waitForRow(page, name, { timeout = 120_000 } = {}) {
  const handle = await page.waitForFunction(finishedRow, name, { timeout, polling: 100 });
  return handle.jsonValue();
}
