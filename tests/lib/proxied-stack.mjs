// The set-up of the tests that put the fault proxy (tests/lib/proxy.mjs) between the browser and
// the store: a signing server whose presigned URLs name the proxy (`--public-endpoint`), the
// proxy forwarding them to the store with their Host unchanged, headless Chromium, and an S3
// client that reads back what the store holds. The embedded store by default; a real one (Garage,
// Ceph radosgw) when the test names it.
import { launchBrowser } from './browser.mjs';
import { startProxy } from './proxy.mjs';
import { s3Client } from './s3.mjs';
import { embeddedCredentials, startServer } from './server.mjs';

/**
 * Starts a signing server whose part URLs name `proxy`, and points the proxy at its store:
 * `store` (`{ endpoint, region, accessKey, secretKey }`, as startGarage and startCeph resolve
 * to) and `bucket`, or, with no `store`, the server's embedded store. `args` are more server
 * flags; the rest (dataDir, listen, env) goes to startServer.
 */
export async function serverBehind(proxy, { store = null, bucket, args = [], env = {}, ...options } = {}) {
  const storeArgs = store
    ? ['--endpoint', store.endpoint, '--bucket', bucket, '--region', store.region, '--path-style']
    : [];
  const storeEnv = store ? { AWS_ACCESS_KEY_ID: store.accessKey, AWS_SECRET_ACCESS_KEY: store.secretKey } : {};
  const server = await startServer({
    args: [...storeArgs, '--public-endpoint', proxy.url, ...args],
    env: { ...storeEnv, ...env },
    ...options,
  });
  proxy.setTarget(store?.endpoint ?? server.storeEndpoint);
  return server;
}

/**
 * Starts the fault proxy (`proxy`: startProxy's options, e.g. `{ enforceExpiry: true }`), a
 * server behind it (serverBehind's options: `store`, `bucket`, `args`, `dataDir`, …) and headless
 * Chromium, unless `browser` names one already running, which is used and left open. On a real
 * `store`, `prepareBucket(s3, bucket)` runs before the server starts (createBucketForBrowsers,
 * allowBrowsers). Resolves to `{ browser, proxy, server, s3, bucket, stop() }`, the arguments
 * the scenarios of tests/lib/resilience.mjs take. `stop()` stops the server `stack.server` holds
 * then (a test may put a restarted one there), the proxy and a browser started here; whatever
 * started is stopped again when something else failed.
 */
export async function startProxiedStack({
  browser = null, proxy = {}, store = null, bucket = 's3-direct', prepareBucket = null, ...serverOptions
} = {}) {
  const started = await Promise.allSettled([browser ?? launchBrowser(), startProxy(proxy)]);
  const [launched, fault] = started.map((r) => r.value);
  const stack = {
    browser: launched ?? null,
    proxy: fault,
    server: null,
    s3: null,
    bucket,
    async stop() {
      if (!browser) await launched?.close();
      await stack.server?.stop();
      await fault?.stop();
    },
  };
  try {
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (store) {
      stack.s3 = s3Client({
        endpoint: store.endpoint, region: store.region, accessKeyId: store.accessKey, secretAccessKey: store.secretKey,
      });
      await prepareBucket?.(stack.s3, bucket);
    }
    stack.server = await serverBehind(fault, { store, bucket, ...serverOptions });
    stack.s3 ??= s3Client({ endpoint: stack.server.storeEndpoint, ...embeddedCredentials });
    return stack;
  } catch (err) {
    await stack.stop();
    throw err;
  }
}
