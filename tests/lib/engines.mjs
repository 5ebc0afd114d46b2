// One small interface over three browser engines, so one scenario file runs on each of them.
// Every engine is a Debian package; nothing here downloads a browser build.
//
//   chromium  Debian chromium, headless, through playwright-core (as tests/lib/browser.mjs)
//   firefox   Debian firefox-esr, headless, through puppeteer-core over WebDriver BiDi
//   webkit    the MiniBrowser of Debian libwebkit2gtk-4.1 through WebKitWebDriver (classic
//             WebDriver, package webkit2gtk-driver) and selenium-webdriver, on an Xvfb display
//             started here (WebKitGTK has no headless mode)
//
// S3_DIRECT_BROWSERS=chromium,firefox,webkit chooses the engines of a run (default: all three).
// A page offers only what all three can do: open a URL, evaluate a function, wait for one with a
// deadline, choose files for an <input type=file> by path (WebDriver's way: the path typed into
// the input), type, click, press a key (Tab, Enter, Space), screenshot. Going offline is Chromium's
// and Firefox's alone (`page.setOffline` is absent on WebKit: classic WebDriver has no network
// emulation). Network faults are the fault proxy's job
// (tests/lib/proxy.mjs), never a browser's own interception.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import net from 'node:net';
import { finishedRow, launchBrowser } from './browser.mjs';

export const ENGINES = ['chromium', 'firefox', 'webkit'];

const viewport = { width: 1000, height: 720 };

const paths = {
  chromium: () => process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  firefox: () => process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr',
  webdriver: () => process.env.WEBKIT_WEBDRIVER_PATH ?? '/usr/bin/WebKitWebDriver',
  minibrowser: () => process.env.MINIBROWSER_PATH ?? miniBrowserPath(),
  xvfb: () => process.env.XVFB_PATH ?? '/usr/bin/Xvfb',
};

/** The MiniBrowser that libwebkit2gtk-4.1-0 installs (its folder names the architecture). */
function miniBrowserPath() {
  try {
    const files = execFileSync('dpkg', ['-L', 'libwebkit2gtk-4.1-0'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return files.split('\n').find((f) => f.endsWith('/MiniBrowser')) ?? '';
  } catch {
    return '';
  }
}

/** The engines this run covers, from S3_DIRECT_BROWSERS (default all three). */
export function selectedEngines() {
  const names = (process.env.S3_DIRECT_BROWSERS ?? ENGINES.join(','))
    .split(',').map((n) => n.trim().toLowerCase()).filter(Boolean);
  for (const name of names) {
    if (!ENGINES.includes(name)) {
      throw new Error(`S3_DIRECT_BROWSERS names "${name}"; the engines are ${ENGINES.join(', ')}`);
    }
  }
  return names;
}

/** The programs an engine needs that are not installed here, as a sentence, or null. */
function missingPrograms(name) {
  const needs = {
    chromium: [['chromium', paths.chromium()]],
    firefox: [['firefox-esr', paths.firefox()]],
    webkit: [['webkit2gtk-driver', paths.webdriver()], ['libwebkit2gtk-4.1-0', paths.minibrowser()],
      ['xvfb', paths.xvfb()]],
  }[name];
  const missing = needs.filter(([, file]) => !file || !existsSync(file)).map(([pkg]) => pkg);
  return missing.length ? `${name} needs ${missing.join(', ')} (run scripts/setup.sh test)` : null;
}

/**
 * Why `name` cannot run here, or null when it can. Only a reason to skip outside CI: under
 * CI=true the engine's tests run and fail, so a broken install cannot pass quietly.
 */
export function engineMissing(name) {
  return process.env.CI === 'true' ? null : missingPrograms(name);
}

/**
 * Starts an engine: resolves to `{ name, version, newPage(), close() }`. Each page is a fresh
 * profile (its own storage), closed with `page.close()`.
 */
export async function launchEngine(name) {
  const missing = missingPrograms(name);
  if (missing) throw new Error(missing);
  return { chromium: launchChromium, firefox: launchFirefox, webkit: launchWebKit }[name]();
}

/** `host >>> inner`: an element inside `host`'s open shadow root (the one syntax all three take). */
const shadowParts = (selector) => selector.split('>>>').map((s) => s.trim());

/** Polls `probe()` until it returns something truthy; throws after `timeout` ms naming `what`. */
async function poll(probe, { timeout, interval = 100, what }) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err; // a page between two documents cannot evaluate; try again until the deadline
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((r) => { setTimeout(r, interval); });
  }
}

/**
 * What every engine's page offers on top of its own goto, url, evaluate, setFiles, fill, click,
 * press, screenshot, errors (uncaught errors in the page so far), close, and setOffline where the
 * driver has it.
 */
function withCommon(page) {
  /**
   * Calls `fn(arg)` in the page every `interval` ms until it returns something truthy, and
   * resolves to that (JSON) value.
   */
  page.waitFor = (fn, arg, { timeout = 60_000, interval = 100, what = 'a condition in the page' } = {}) => (
    poll(() => page.evaluate(fn, arg), { timeout, interval, what })
  );
  // A screenshot shows the page at rest: running transitions (open shadow roots included) end
  // first, and a frame is painted after that (WebKitWebDriver's screenshot is the last frame
  // painted, which can be seconds old).
  const shoot = page.screenshot;
  page.screenshot = async (file) => {
    await page.evaluate(async () => {
      const roots = [document, ...[...document.querySelectorAll('*')].map((e) => e.shadowRoot).filter(Boolean)];
      const running = roots.flatMap((r) => r.getAnimations()).map((a) => a.finished.catch(() => {}));
      await Promise.race([Promise.all(running), new Promise((r) => { setTimeout(r, 2000); })]);
      await new Promise((r) => { requestAnimationFrame(() => requestAnimationFrame(r)); });
    });
    await shoot(file);
  };
  return page;
}

async function launchChromium() {
  const browser = await launchBrowser();
  return {
    name: 'chromium',
    version: `Chromium ${browser.version()}`,
    async newPage() {
      const pw = await browser.newPage({ viewport });
      const errors = [];
      pw.on('pageerror', (err) => errors.push(err.message));
      const css = (selector) => shadowParts(selector).join(' '); // playwright's CSS pierces open shadow roots
      return withCommon({
        errors: async () => errors.slice(),
        goto: (url) => pw.goto(url).then(() => undefined),
        url: () => pw.url(),
        evaluate: (fn, arg) => pw.evaluate(fn, arg),
        setFiles: (selector, files) => pw.setInputFiles(css(selector), files),
        fill: (selector, text) => pw.fill(css(selector), text),
        click: (selector) => pw.click(css(selector)),
        press: (key) => pw.keyboard.press(key),
        setOffline: (offline) => pw.context().setOffline(offline),
        screenshot: (path) => pw.screenshot({ path, animations: 'disabled' }).then(() => undefined),
        close: () => pw.close(),
      });
    },
    close: () => browser.close(),
  };
}

async function launchFirefox() {
  const puppeteer = (await import('puppeteer-core')).default;
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: paths.firefox(), headless: true, defaultViewport: viewport,
  });
  return {
    name: 'firefox',
    version: `Firefox ${(await browser.version()).replace(/^firefox\//, '')}`,
    async newPage() {
      const context = await browser.createBrowserContext();
      const pp = await context.newPage();
      await pp.setViewport(viewport);
      const errors = [];
      // Firefox also reports a request whose connection was cut as an error of the page ("Cross-Origin
      // Request Blocked … CORS request did not succeed"), though the page handled it: not counted.
      pp.on('pageerror', (err) => {
        if (!/^Cross-Origin Request Blocked: .*\(Reason: CORS request did not succeed\)/.test(err.message)) errors.push(err.message);
      });
      const find = async (selector) => {
        const el = await pp.$(selector); // puppeteer takes `>>>` itself
        if (!el) throw new Error(`no element matches ${selector}`);
        return el;
      };
      return withCommon({
        errors: async () => errors.slice(),
        goto: (url) => pp.goto(url).then(() => undefined),
        url: () => pp.url(),
        evaluate: (fn, arg) => pp.evaluate(fn, arg),
        setFiles: async (selector, files) => (await find(selector)).uploadFile(...files),
        fill: async (selector, text) => (await find(selector)).type(text),
        click: async (selector) => (await find(selector)).click(),
        press: (key) => pp.keyboard.press(key === 'Space' ? ' ' : key),
        // WebDriver BiDi's network emulation: navigator.onLine turns false and requests fail.
        setOffline: (offline) => pp.setOfflineMode(offline),
        screenshot: (path) => pp.screenshot({ path }).then(() => undefined),
        close: () => context.close(),
      });
    },
    close: () => browser.close(),
  };
}

/** Kills `child` when this process exits, however it exits. */
function reap(child) {
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  child.once('exit', () => process.off('exit', kill));
}

/** Stops `child` with SIGTERM, or SIGKILL when it is still there 5 s later. */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** An X display of its own: Xvfb picks a free display number and tells it on fd 3. */
async function startXvfb() {
  const child = spawn(paths.xvfb(), ['-displayfd', '3', '-nolisten', 'tcp', '-screen', '0', '1280x1024x24'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  reap(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const display = await Promise.race([
    once(child.stdio[3], 'data').then(([d]) => `:${String(d).trim()}`),
    once(child, 'exit').then(([code]) => { throw new Error(`Xvfb exited (${code}) before giving a display: ${stderr}`); }),
    new Promise((_, reject) => { setTimeout(() => reject(new Error('Xvfb gave no display in 20 s')), 20_000).unref(); }),
  ]);
  return { display, child };
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** WebKitWebDriver on a free loopback port, ready once its /status answers. */
async function startWebDriver(display) {
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    const child = spawn(paths.webdriver(), [`--port=${port}`, '--host=127.0.0.1'], {
      env: { ...process.env, DISPLAY: display }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    reap(child);
    let stderr = '';
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    const url = `http://127.0.0.1:${port}`;
    try {
      await poll(async () => {
        if (child.exitCode !== null) throw Object.assign(new Error(`WebKitWebDriver exited: ${stderr}`), { fatal: true });
        return (await fetch(`${url}/status`)).ok;
      }, { timeout: 20_000, what: 'WebKitWebDriver to answer /status' });
      return { url, child };
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt === 3) throw err; // the port was taken between choosing and binding it
    }
  }
}

async function launchWebKit() {
  const { Builder, By, Key } = await import('selenium-webdriver');
  const keys = { Tab: Key.TAB, Enter: Key.ENTER, Space: Key.SPACE };
  const xvfb = await startXvfb();
  let driver = await startWebDriver(xvfb.display).catch(async (err) => {
    await stop(xvfb.child);
    throw err;
  });
  const capabilities = {
    browserName: 'MiniBrowser',
    'webkitgtk:browserOptions': { binary: paths.minibrowser(), args: ['--automation'] },
  };
  // A new session has been seen to hang for good (WebKitWebDriver waiting on a MiniBrowser that
  // never came up): after 30 s the driver is replaced and the session asked for once more.
  const session = async () => {
    for (let attempt = 1; ; attempt += 1) {
      const wd = new Builder().usingServer(driver.url).withCapabilities(capabilities).build();
      const ready = wd.getSession().then(() => wd);
      // Abandoned after a timeout, both reject when the driver is stopped: `ready`, and the promise
      // of the driver the builder makes (the builder's thenable `wd`, which nothing awaits then);
      // unhandled, that rejection failed a whole test file after its tests had passed.
      ready.catch(() => {});
      wd.catch(() => {});
      let timer;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('WebKitWebDriver gave no session in 30 s')), 30_000);
      });
      try {
        return await Promise.race([ready, late]);
      } catch (err) {
        if (attempt === 2) throw err;
        process.stderr.write(`webkit: ${err.message}; replacing WebKitWebDriver (${driver.url})\n`);
        await stop(driver.child);
        driver = await startWebDriver(xvfb.display);
      } finally {
        clearTimeout(timer);
      }
    }
  };
  const first = await session();
  const version = `WebKitGTK ${(await first.getCapabilities()).get('browserVersion')}`;
  await first.quit();
  return {
    name: 'webkit',
    version,
    async newPage() {
      // A session per page: its own MiniBrowser, so its own storage, as a new context elsewhere.
      const wd = await session();
      await wd.manage().window().setRect(viewport);
      const find = async (selector) => {
        const [outer, ...inner] = shadowParts(selector);
        let el = await wd.findElement(By.css(outer));
        for (const part of inner) el = await (await el.getShadowRoot()).findElement(By.css(part));
        return el;
      };
      // Classic WebDriver reports no page errors: the page records them itself from load on.
      const recordErrors = () => wd.executeScript(() => {
        if (window.engineErrors) return;
        window.engineErrors = [];
        window.addEventListener('error', (e) => window.engineErrors.push(e.message));
        window.addEventListener('unhandledrejection', (e) => window.engineErrors.push(String(e.reason)));
      });
      return withCommon({
        async goto(url) {
          await wd.get(url);
          await recordErrors();
        },
        url: () => wd.getCurrentUrl(),
        // WebDriver awaits a returned promise, so `fn` may be async as elsewhere.
        evaluate: (fn, arg) => wd.executeScript(`return (${fn}).apply(null, arguments)`, arg),
        // Several files go as one text, one path a line (WebDriver's rule for <input multiple>).
        setFiles: async (selector, files) => (await find(selector)).sendKeys(files.join('\n')),
        fill: async (selector, text) => (await find(selector)).sendKeys(text),
        click: async (selector) => (await find(selector)).click(),
        // To the focused element, as a person types: WebDriver's actions, not an element's sendKeys
        // (which would move the focus to that element first).
        press: (key) => wd.actions().sendKeys(keys[key] ?? key).perform(),
        screenshot: async (path) => writeFile(path, Buffer.from(await wd.takeScreenshot(), 'base64')),
        // The errors the page recorded since it loaded (a load error before that is not seen).
        errors: () => wd.executeScript(() => window.engineErrors ?? []),
        // Quitting gets the same 30 s deadline as starting: past it the driver is replaced.
        async close() {
          let timer;
          const late = new Promise((resolve) => { timer = setTimeout(() => resolve('late'), 30_000); });
          const quit = wd.quit();
          quit.catch(() => {});
          const outcome = await Promise.race([quit, late]).finally(() => clearTimeout(timer));
          if (outcome === 'late') {
            process.stderr.write(`webkit: a session did not quit in 30 s; replacing WebKitWebDriver (${driver.url})\n`);
            await stop(driver.child);
            driver = await startWebDriver(xvfb.display);
          }
        },
      });
    },
    async close() {
      await stop(driver.child);
      await stop(xvfb.child);
    },
  };
}

/** Opens the demo page with the given query and waits until its client is loaded. */
export async function openDemoPage(engine, serverUrl, query = {}) {
  const page = await engine.newPage();
  await page.goto(`${serverUrl}/?${new URLSearchParams(query)}`);
  await page.waitFor(() => document.body.dataset.ready === 'true', null, { timeout: 30_000, what: 'the demo page to load' });
  return page;
}

/** Waits for the demo row of `name` to reach a final state; its state, key, checksum and text. */
export function waitForDemoRow(page, name, { timeout = 180_000 } = {}) {
  return page.waitFor(finishedRow, name, { timeout, what: `the upload of ${name} to end` });
}
