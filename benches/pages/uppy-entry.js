// Uppy 5 (@uppy/core + @uppy/aws-s3) as an application sets it up for S3 multipart through a
// Companion-style signing server; bundled into uppy.js by scripts/bench.sh.
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';
import { firstPutMs } from './timing.js';

window.bench = {
  wasmMemory: () => 0,
  /** `endpoint`: the signing server; `chunkSize`: part size (Uppy's default when absent). */
  async run({ endpoint, chunkSize, limit }) {
    const file = document.querySelector('#picker').files[0];
    const uppy = new Uppy();
    const options = { endpoint, shouldUseMultipart: true };
    if (chunkSize) options.getChunkSize = () => chunkSize;
    if (limit) options.limit = limit;
    uppy.use(AwsS3, options);
    uppy.addFile({ name: file.name, type: 'application/octet-stream', data: file });
    const started = performance.now();
    const result = await uppy.upload();
    const seconds = (performance.now() - started) / 1000;
    const firstPut = firstPutMs(started);
    if (result.failed?.length) throw new Error(`Uppy: ${result.failed[0].error}`);
    const done = result.successful[0];
    uppy.destroy();
    return { seconds, key: done.s3Multipart?.key ?? null, location: done.uploadURL, firstPutMs: firstPut };
  },
};
document.body.dataset.ready = 'true';
