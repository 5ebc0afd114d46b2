// Typechecked (never run) by check-api.sh against the built package: every option, event, result
// and error of the public API, used the way the README shows. The `@ts-expect-error` lines are
// mistakes the types must catch; if a type loosens (to `any`, say), they stop being errors and
// the check fails.
import init, {
  initSync,
  type QueueEvent,
  type QueueFileCounts,
  type QueueItem,
  type QueueItemOptions,
  type QueueItemState,
  type QueueOptions,
  type QueueProgress,
  type S3DirectError,
  type S3DirectErrorCode,
  UploadQueue,
  type UploadOptions,
  type UploadProgress,
  type UploadResult,
  Uploader,
  type UploaderOptions,
} from '../pkg/s3_direct.js';
import type { S3DirectUploadElement, S3DirectUploadGroup } from '../pkg/widget.js';

export async function everything(file: File, blob: Blob): Promise<string[]> {
  await init();
  await init({ module_or_path: new URL('s3_direct_bg.wasm', import.meta.url) });
  initSync({ module: new Uint8Array() });

  const uploaderOptions: UploaderOptions = {
    endpoint: '/s3',
    concurrency: 4,
    partSize: 8 * 1024 * 1024,
    headers: { Authorization: 'Bearer token' },
    retries: 6,
    retryDelay: 1000,
    maxRetryDelay: 30_000,
    stallTimeout: 30_000,
    resume: true,
    checksum: 'auto',
  };
  const checksums: NonNullable<UploaderOptions['checksum']>[] = ['auto', 'off', 'md5', 'crc32', 'crc32c', 'sha256'];
  // @ts-expect-error not a checksum the client knows
  const wrongChecksum: UploaderOptions = { checksum: 'crc64' };
  // @ts-expect-error concurrency is a number
  const wrongConcurrency: UploaderOptions = { concurrency: '4' };

  const uploader = new Uploader(uploaderOptions);
  const controller = new AbortController();
  const uploadOptions: UploadOptions = {
    onProgress: (p: UploadProgress) => {
      const phases: UploadProgress['phase'][] = ['uploading', 'paused', 'offline', 'completing', 'done'];
      const numbers: number[] = [p.bytesSent, p.bytesConfirmed, p.partsDone, p.speed];
      // A stream's totals are unknown until it ends.
      const totals: (number | null)[] = [p.bytesTotal, p.partsTotal];
      // @ts-expect-error bytesTotal may be null
      const total: number = p.bytesTotal;
      const eta: number | null = p.eta;
      void [phases.includes(p.phase), numbers, totals, total, eta];
    },
    signal: controller.signal,
    filename: 'report.pdf',
    relativePath: 'reports/2026/report.pdf',
    contentType: 'application/pdf',
    metadata: { owner: 'alice' },
  };
  const result: UploadResult = await uploader.upload(blob, uploadOptions);
  const stream: ReadableStream<Uint8Array> = file.stream().pipeThrough(new CompressionStream('gzip'));
  const streamed: UploadResult = await uploader.upload(stream, {
    filename: 'report.pdf.gz', contentType: 'application/gzip', expectedSize: file.size,
  });
  uploader.start(new ReadableStream<Uint8Array>(), { filename: 'empty.bin' }).cancel();
  // A stream the caller spools, and the spooled bytes later, under one resume key.
  uploader.start(new ReadableStream<Uint8Array>(), { filename: 'take.webm', resumeKey: 'spool:take' });
  uploader.start(blob, { filename: 'take.webm', resumeKey: 'spool:take' });
  // @ts-expect-error resumeKey is a string
  const wrongKey: UploadOptions = { resumeKey: 7 };
  // @ts-expect-error expectedSize is a number
  const wrongExpected: UploadOptions = { expectedSize: '1 GiB' };
  const handle = uploader.start(file);
  handle.pause();
  handle.resume();
  handle.cancel();
  const handleState: 'running' | 'paused' | 'cancelled' = handle.state;
  const last: UploadProgress | null = handle.progress;
  const fromHandle: UploadResult = await handle.promise;

  const queueOptions: QueueOptions = { ...uploaderOptions, concurrency: 6, singlePutThreshold: 5 * 1024 * 1024 };
  const queue = new UploadQueue(queueOptions);
  new UploadQueue();
  const itemOptions: QueueItemOptions = {
    filename: 'a.bin', relativePath: 'd/a.bin', contentType: 'application/octet-stream', metadata: { a: 'b' },
  };
  const item: QueueItem = queue.add(file);
  const other: QueueItem = queue.add(blob, itemOptions);
  const items: QueueItem[] = queue.items;
  const id: number = item.id;
  const name: string = item.name;
  const size: number | null = item.size;
  const streamItem: QueueItem = queue.add(new ReadableStream<Uint8Array>(), { filename: 'live.webm', expectedSize: 1 << 30 });
  const state: QueueItemState = item.state;
  const itemProgress: UploadProgress = item.progress;
  const itemResult: UploadResult | undefined = item.result;
  const itemError: S3DirectError | undefined = item.error;
  const itemPromise: Promise<UploadResult> = item.promise;
  item.pause();
  item.resume();
  item.cancel();
  other.retry();
  queue.pauseAll();
  queue.resumeAll();
  queue.cancelAll();
  // @ts-expect-error items are read-only
  item.state = 'done';

  const progress: QueueProgress = queue.progress;
  const files: QueueFileCounts = progress.files;
  const counts: number[] = [files.total, files.queued, files.active, files.paused, files.done, files.failed, files.cancelled];
  const fraction: number = progress.fraction;
  const queueEta: number | null = progress.eta;
  void [counts, fraction, queueEta, progress.bytesSent, progress.bytesTotal, progress.speed];

  const seen: string[] = [];
  const offs: (() => void)[] = [
    queue.on('progress', (p) => seen.push(`${p.fraction} ${p.files.done}`)),
    queue.on('item-state', ({ item, state }) => seen.push(`${item.name} ${state}`)),
    queue.on('item-progress', ({ item, progress }) => seen.push(`${item.id} ${progress.bytesSent}`)),
    queue.on('item-complete', ({ item, result }) => seen.push(`${item.name} ${result.key} ${result.etag}`)),
    queue.on('item-error', ({ item, error }) => seen.push(`${item.name} ${error.code} ${error.status} ${error.part}`)),
    queue.on('idle', (detail) => {
      const none: undefined = detail;
      seen.push(String(none));
    }),
  ];
  for (const off of offs) off();
  const events: QueueEvent[] = ['progress', 'item-state', 'item-progress', 'item-complete', 'item-error', 'idle'];
  // @ts-expect-error no such event
  queue.on('complete', () => {});
  // @ts-expect-error a progress detail has no `item`
  queue.on('progress', (p) => p.item);
  // @ts-expect-error the result's size is a number
  queue.on('item-complete', ({ result }) => result.size.toUpperCase());
  await queue.idle();

  try {
    await itemPromise;
  } catch (e) {
    const error = e as S3DirectError;
    const code: S3DirectErrorCode = error.code;
    const known: S3DirectErrorCode[] = [
      'aborted', 'missing_etag', 'http_error', 'network_error', 'stalled', 'file_unreadable',
      'list_failed', 'create_failed', 'sign_failed', 'complete_failed', 'invalid_options',
      'file_too_large', 'stream_failed', 'stream_too_large', 'a_code_from_the_server',
    ];
    const named: 'S3DirectError' = error.name;
    const status: number | undefined = error.status;
    const part: number | undefined = error.part;
    void [code, known, named, status, part];
  }

  const keys: (string | null)[] = [result.key, result.bucket, result.location, result.etag, result.checksum, result.crc32c, result.crc32, result.receipt, fromHandle.key, streamed.key];
  const sizes: (number | null)[] = [result.size, id, size, streamItem.size];
  void [checksums, wrongChecksum, wrongConcurrency, wrongExpected, wrongKey, handleState, last, items, name, state, itemProgress, itemResult, itemError, events];
  return [...seen, ...keys.map(String), ...sizes.map(String)];
}

// The widget's types (`s3-direct/widget`): its rows, its folders and its events.
export function widget(el: S3DirectUploadElement): string[] {
  const seen: string[] = el.items.map((i) => `${i.name} ${i.path ?? ''} ${i.group ?? ''} ${i.state}`);
  const groups: S3DirectUploadGroup[] = el.groups;
  for (const g of groups) seen.push(`${g.id} ${g.name} ${g.state} ${g.done} of ${g.files}, ${g.failed} failed, ${g.fraction}`);
  // @ts-expect-error a folder's state is one of its five
  const wrongState: S3DirectUploadGroup['state'] = 'queued';
  // @ts-expect-error the list of folders is read-only
  el.groups = [];
  el.addEventListener('upload-cancel', (e) => seen.push(`${e.detail.name} ${e.detail.size}`));
  el.addEventListener('queue-complete', (e) => seen.push(`${e.detail.done} ${e.detail.cancelled} ${e.detail.keys.join()}`));
  const viaTag: S3DirectUploadElement | null = document.querySelector('s3-direct-upload');
  el.addStream(new ReadableStream<Uint8Array>(), { filename: 'take-1.webm', contentType: 'video/webm' });
  // @ts-expect-error a stream needs a name
  el.addStream(new ReadableStream<Uint8Array>(), {});
  const sizes: (number | null)[] = [el.progress.bytesTotal, ...el.items.map((i) => i.size)];
  el.addEventListener('upload-start', (e) => seen.push(`${e.detail.file?.name ?? 'stream'} ${e.detail.size}`));
  void [wrongState, viaTag, sizes];
  return seen;
}
