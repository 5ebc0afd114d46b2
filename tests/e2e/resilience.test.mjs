// Uploads that survive the real world, on the zero-config setup: the embedded store behind the
// fault-injecting proxy (presigned URLs name the proxy through --public-endpoint), driven by the
// demo page in headless Chromium.
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../lib/files.mjs';
import { serverBehind, startProxiedStack } from '../lib/proxied-stack.mjs';
import {
  defaultStallIsCaughtInSeconds, offlineThenOnline, pauseAndResume, randomFaults,
  reloadAndChooseAgain, reopenFromStoredHandle, resignsShortLivedUrls, stalledPartIsRetried,
  survivesServerRestart,
} from '../lib/resilience.mjs';

describe('embedded store behind a fault-injecting proxy', () => {
  let stack;

  before(async () => {
    stack = await startProxiedStack();
  });

  after(() => stack?.stop());

  it('a 256 MiB upload with one part in five failing once completes byte for byte', async () => {
    await randomFaults(stack);
  });

  it('reloading half-way and choosing the file again re-sends only the parts in flight', async () => {
    await reloadAndChooseAgain(stack);
  });

  it('after a reload, a file is reopened from its stored handle (Chromium) and resumed', async () => {
    await reopenFromStoredHandle(stack);
  });

  it('pause in the page stops sending and resume finishes without re-sending stored parts', async () => {
    await pauseAndResume(stack);
  });

  it('going offline waits for the network instead of failing, and online finishes', async () => {
    await offlineThenOnline(stack);
  });

  it('a part whose bytes stop moving is aborted after the stall timeout and sent again', async () => {
    await stalledPartIsRetried(stack);
  });

  it('with default settings a stalled part of a 256 MiB upload is sent again within 10 s', async (t) => {
    const { resentAfterMs, othersResent } = await defaultStallIsCaughtInSeconds(stack);
    t.diagnostic(`sent again ${resentAfterMs} ms after the stall began; ${othersResent} other parts sent twice`);
  });

  it('with 5 s URLs on a throttled link the upload completes by re-signing', async () => {
    const short = await startProxiedStack({
      browser: stack.browser, proxy: { enforceExpiry: true }, args: ['--url-lifetime', '5'],
    });
    try {
      await resignsShortLivedUrls(short);
    } finally {
      await short.stop();
    }
  });

  it('killing and restarting the signing server mid-upload does not fail the upload', async () => {
    const dataDir = await tempDir('s3-direct-data-');
    // Upload tokens are signed with this secret; a random one per process would not survive
    // the restart (servers before upload tokens do not know the option).
    const secret = ['--upload-secret', 'e2e-restart-secret-0123456789abcdef-0123'];
    const restart = await startProxiedStack({ browser: stack.browser, dataDir, args: secret });
    const listen = new URL(restart.server.url).host;
    const embedded = new URL(restart.server.storeEndpoint).host;
    try {
      await survivesServerRestart({
        ...restart,
        getServer: () => restart.server,
        restartServer: async () => {
          restart.server = await serverBehind(restart.proxy, {
            dataDir, listen, args: [...secret, '--embedded-listen', embedded],
          });
        },
      });
    } finally {
      await restart.stop();
    }
  });
});
