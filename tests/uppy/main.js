// The page the Uppy compatibility test drives: @uppy/core with @uppy/aws-s3 configured the way a
// Companion user configures it, only `endpoint` pointing at an s3-direct server and the caller's
// bearer token in `headers`. The test bundles this file with esbuild (tests/e2e/uppy.test.mjs).
//
// `window.startUppy({ endpoint, token, multipartFrom })` sets Uppy up; files chosen in #picker are
// uploaded at once, and every event the test checks is recorded in `window.uppyEvents`.
import Uppy from '@uppy/core';
import AwsS3 from '@uppy/aws-s3';

const events = [];
window.uppyEvents = events;

window.startUppy = ({ endpoint, token, multipartFrom }) => {
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(AwsS3, {
    endpoint,
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
    // Uppy's default sends files up to 100 MB in one PUT; the test wants both kinds.
    shouldUseMultipart: (file) => file.size >= multipartFrom,
  });

  uppy.on('upload-progress', (file, progress) => {
    events.push({ type: 'progress', name: file.name, sent: progress.bytesUploaded, total: progress.bytesTotal });
  });
  uppy.on('s3-multipart:part-uploaded', (file, part) => {
    events.push({ type: 'part', name: file.name, part: part.PartNumber });
  });
  uppy.on('upload-success', (file, response) => {
    events.push({ type: 'success', name: file.name, body: response.body, uploadURL: response.uploadURL });
  });
  uppy.on('upload-error', (file, error) => {
    events.push({ type: 'error', name: file?.name, message: String(error?.message ?? error) });
  });
  uppy.on('complete', (result) => {
    events.push({ type: 'complete', successful: result.successful.length, failed: result.failed.length });
    document.body.dataset.state = 'complete';
  });

  document.getElementById('picker').addEventListener('change', (e) => {
    delete document.body.dataset.state;
    for (const file of e.target.files) {
      uppy.addFile({ name: file.name, type: file.type, data: file, source: 'picker' });
    }
    uppy.upload().catch((err) => {
      events.push({ type: 'error', message: String(err?.message ?? err) });
      document.body.dataset.state = 'complete';
    });
  });
  document.body.dataset.ready = 'true';
};
