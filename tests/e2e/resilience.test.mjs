// Uploads that survive the real world, on the zero-config setup: the embedded store behind the
// fault-injecting proxy (presigned URLs name the proxy through --public-endpoint), driven by the
// demo page in headless Chromium.
import { after, before, describe, it } from 'node:test';
import { launchBrowser } from '../lib/browser.mjs';
import { tempDir } from '../lib/files.mjs';
import { startProxy } from '../lib/proxy.mjs';
import {
  defaultStallIsCaughtInSeconds, offlineThenOnline, pauseAndResume, randomFaults,
  reloadAndChooseAgain, reopenFromStoredHandle, resignsShortLivedUrls, stalledPartIsRetried,
  survivesServerRestart,
} from '../lib/resilience.mjs';
import { s3Client } from '../lib/s3.mjs';
import { embeddedCredentials, startServer } from '../lib/server.mjs';

const bucket = 's3-direct';

/** A server whose part URLs go through `proxy`, which forwards to its embedded store. */
async function serverBehind(proxy, { args = [], ...options } = {}) {
  const server = await startServer({ args: ['--public-endpoint', proxy.url, ...args], ...options });
  proxy.setTarget(server.storeEndpoint);
  return server;
}

describe('embedded store behind a fault-injecting proxy', () => {
  let browser;
  let proxy;
  let server;
  let s3;

  before(async () => {
    [browser, proxy] = await Promise.all([launchBrowser(), startProxy()]);
    server = await serverBehind(proxy);
    s3 = s3Client({ endpoint: server.storeEndpoint, ...embeddedCredentials });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await proxy?.stop();
  });

  it('a 256 MiB upload with one part in five failing once completes byte for byte', async () => {
    await randomFaults({ browser, server, proxy, s3, bucket });
  });

  it('reloading half-way and choosing the file again re-sends only the parts in flight', async () => {
    await reloadAndChooseAgain({ browser, server, proxy, s3, bucket });
  });

  it('after a reload, a file is reopened from its stored handle (Chromium) and resumed', async () => {
    await reopenFromStoredHandle({ browser, server, proxy, s3, bucket });
  });

  it('pause in the page stops sending and resume finishes without re-sending stored parts', async () => {
    await pauseAndResume({ browser, server, proxy, s3, bucket });
  });

  it('going offline waits for the network instead of failing, and online finishes', async () => {
    await offlineThenOnline({ browser, server, proxy, s3, bucket });
  });

  it('a part whose bytes stop moving is aborted after the stall timeout and sent again', async () => {
    await stalledPartIsRetried({ browser, server, proxy, s3, bucket });
  });

  it('with default settings a stalled part of a 256 MiB upload is sent again within 10 s', async (t) => {
    const { resentAfterMs, othersResent } = await defaultStallIsCaughtInSeconds({
      browser, server, proxy, s3, bucket,
    });
    t.diagnostic(`sent again ${resentAfterMs} ms after the stall began; ${othersResent} other parts sent twice`);
  });

  it('with 5 s URLs on a throttled link the upload completes by re-signing', async () => {
    const short = await startProxy({ enforceExpiry: true });
    const shortServer = await serverBehind(short, { args: ['--url-lifetime', '5'] });
    try {
      const shortS3 = s3Client({ endpoint: shortServer.storeEndpoint, ...embeddedCredentials });
      await resignsShortLivedUrls({ browser, server: shortServer, proxy: short, s3: shortS3, bucket });
    } finally {
      await shortServer.stop();
      await short.stop();
    }
  });

  it('killing and restarting the signing server mid-upload does not fail the upload', async () => {
    const restartProxy = await startProxy();
    const dataDir = await tempDir('s3-direct-data-');
    // Upload tokens are signed with this secret; a random one per process would not survive
    // the restart (servers before upload tokens do not know the option).
    const secret = ['--upload-secret', 'e2e-restart-secret-0123456789abcdef-0123'];
    let current = await serverBehind(restartProxy, { dataDir, args: secret });
    const listen = new URL(current.url).host;
    const embedded = new URL(current.storeEndpoint).host;
    try {
      const restartS3 = s3Client({ endpoint: current.storeEndpoint, ...embeddedCredentials });
      await survivesServerRestart({
        browser,
        getServer: () => current,
        restartServer: async () => {
          current = await serverBehind(restartProxy, {
            dataDir, listen, args: [...secret, '--embedded-listen', embedded],
          });
        },
        proxy: restartProxy,
        s3: restartS3,
        bucket,
      });
    } finally {
      await current.stop();
      await restartProxy.stop();
    }
  });
});
