// The page the Uppy compatibility test drives: @uppy/core with @uppy/aws-s3 configured the way a
// Companion user configures it, only `endpoint` pointing at an s3-direct server and the caller's
// bearer token in `headers`. The test bundles this file with esbuild (tests/e2e/uppy.test.mjs).
//
// `window.startUppy({ endpoint, token, multipartFrom })` sets Uppy up; files chosen in #picker are
// uploaded at once, and every event the test checks is recorded in `window.uppyEvents`.
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';
import { recordAndUpload } from '../lib/uppy-page.js';

const events = [];
window.uppyEvents = events;

window.startUppy = ({ endpoint, token, multipartFrom }) => {
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(AwsS3, {
    endpoint,
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    // Uppy's default sends files up to 100 MB in one request; the test wants both kinds.
    shouldUseMultipart: (file) => file.size >= multipartFrom,
  });

  recordAndUpload(uppy, events);
};
