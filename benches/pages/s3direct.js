// s3-direct's own client, exactly as an application uses it: `new Uploader(options).upload(file)`.
// `?pkg=baseline` loads the client built from the baseline revision instead (scripts/bench.sh,
// S3_DIRECT_BENCH_BASELINE_REV).
import { firstPutMs } from './timing.js';

const baseline = new URLSearchParams(location.search).get('pkg') === 'baseline';
const { default: init, Uploader } = await import(baseline ? './pkg-baseline/s3_direct.js' : '/pkg/s3_direct.js');
const wasm = await init();

window.bench = {
  /** Bytes of WASM linear memory now (it only grows, so the last reading is the peak). */
  wasmMemory: () => wasm.memory.buffer.byteLength,
  async run({ partSize, concurrency, checksum } = {}) {
    const file = document.querySelector('#picker').files[0];
    const options = { endpoint: '/s3' };
    if (partSize) options.partSize = partSize;
    if (concurrency) options.concurrency = concurrency;
    if (checksum) options.checksum = checksum;
    // The plan's part count, which the runner checks against the default part size it assumes.
    let partsTotal;
    const onProgress = (p) => { partsTotal = p.partsTotal; };
    const started = performance.now();
    const result = await new Uploader(options).upload(file, { onProgress });
    return {
      seconds: (performance.now() - started) / 1000, key: result.key, partsTotal, firstPutMs: firstPutMs(started),
    };
  },
};
document.body.dataset.ready = 'true';
