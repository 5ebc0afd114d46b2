// The page the Uppy 6 compatibility test drives: @uppy/core 6 with @uppy/aws-s3 6 configured the
// way a Companion user configures it, `companionEndpoint` pointing at an s3-direct server. Uppy 6
// sends no Authorization header in this mode, so the server runs with `--auth open`.
//
// The imports are the ones an application writes; tests/e2e/uppy6.test.mjs bundles this file with
// esbuild aliases that map `@uppy/core` (and `@uppy/core/utils`, which @uppy/aws-s3 imports) to
// the `uppy6-core` package and `@uppy/aws-s3` to `uppy6-aws-s3`, since tests/node_modules/@uppy
// holds Uppy 5.
//
// `window.startUppy({ companionEndpoint, multipartFrom, allowedMetaFields, meta })` sets Uppy up;
// `meta` maps a file name to the Uppy meta fields it gets when added. Files chosen in #picker are
// uploaded at once, and every event the test checks is recorded in `window.uppyEvents`.
// `window.uppyVersions` is what Uppy itself reports.
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';
import { recordAndUpload } from '../lib/uppy-page.js';

const events = [];
window.uppyEvents = events;
window.uppyVersions = { core: Uppy.VERSION, awsS3: AwsS3.VERSION };

window.startUppy = ({ companionEndpoint, multipartFrom, allowedMetaFields, meta = {} }) => {
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(AwsS3, {
    companionEndpoint,
    // Uppy's default sends files up to 100 MB in one request; the test wants both kinds.
    shouldUseMultipart: (file) => file.size >= multipartFrom,
    ...(allowedMetaFields ? { allowedMetaFields } : {}),
  });

  recordAndUpload(uppy, events, meta);
};
