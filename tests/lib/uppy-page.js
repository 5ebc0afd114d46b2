// Browser side of the Uppy compatibility pages (tests/uppy, tests/uppy6), bundled into each page:
// records the Uppy events the tests check in `events` and uploads the files chosen in #picker.
// Works with Uppy 5 and 6 alike (the same events and `addFile` / `upload` calls).

/**
 * Attaches the listeners and the picker to `uppy`, then marks the page ready. `meta` maps a file
 * name to the Uppy meta fields it gets when added.
 */
export function recordAndUpload(uppy, events, meta = {}) {
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
      uppy.addFile({ name: file.name, type: file.type, data: file, source: 'picker', meta: meta[file.name] ?? {} });
    }
    uppy.upload().catch((err) => {
      events.push({ type: 'error', message: String(err?.message ?? err) });
      document.body.dataset.state = 'complete';
    });
  });
  document.body.dataset.ready = 'true';
}
