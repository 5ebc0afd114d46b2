// Uppy 6 (@uppy/core + @uppy/aws-s3 6.x) as an application sets it up for S3 multipart through a
// Companion-style signing server (`companionEndpoint`); bundled into uppy6.js by scripts/bench.sh
// with @uppy/core and @uppy/aws-s3 mapped to the Uppy 6 packages (uppy6-core, uppy6-aws-s3).
// Uppy 6 sends a file's parts one after another.
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';
import { firstPutMs } from './timing.js';

window.bench = {
  wasmMemory: () => 0,
  /** `endpoint`: the signing server; `chunkSize`: part size (Uppy's default when absent). */
  async run({ endpoint, chunkSize }) {
    const file = document.querySelector('#picker').files[0];
    const uppy = new Uppy();
    const options = { companionEndpoint: endpoint, shouldUseMultipart: true };
    if (chunkSize) options.getChunkSize = () => chunkSize;
    uppy.use(AwsS3, options);
    uppy.addFile({ name: file.name, type: 'application/octet-stream', data: file });
    const started = performance.now();
    const result = await uppy.upload();
    const seconds = (performance.now() - started) / 1000;
    const firstPut = firstPutMs(started);
    if (result.failed?.length) throw new Error(`Uppy: ${result.failed[0].error}`);
    const done = result.successful[0];
    uppy.destroy();
    if (!AwsS3.VERSION.startsWith('6.')) throw new Error(`bundled @uppy/aws-s3 ${AwsS3.VERSION}, not 6.x`);
    return { seconds, key: done.s3Multipart?.key ?? done.response?.body?.key ?? null, location: done.uploadURL, firstPutMs: firstPut };
  },
};
document.body.dataset.ready = 'true';
