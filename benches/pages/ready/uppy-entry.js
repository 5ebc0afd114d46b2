// Uppy 5 as an application sets it up for S3 multipart through a Companion-style signing server,
// bundled by the time-to-ready section (benches/lib/ready.mjs) into uppy-ready.js: ESM, minified.
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';

/** A constructed Uppy with the AwsS3 plugin, signing through `endpoint`. */
export function ready(endpoint) {
  return new Uppy().use(AwsS3, { endpoint, shouldUseMultipart: true });
}
