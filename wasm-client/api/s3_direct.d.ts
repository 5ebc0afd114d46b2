/* tslint:disable */
/* eslint-disable */

/** Options of an {@link UploadQueue}: those of an {@link Uploader}, and two of its own. */
export interface QueueOptions extends UploaderOptions {
    /**
     * Most PUTs (parts, or whole small files) in flight at once across all files of the queue,
     * 1 to 64; also the most files started at once. Default 6.
     */
    concurrency?: number;
    /**
     * Files of at most this many bytes are sent as one presigned PUT (the signing API's
     * `GET /s3/params`) instead of a multipart upload; 0 sends every file in parts.
     * At most 5 GiB. Default 5 MiB.
     */
    singlePutThreshold?: number;
}

/** Options of one file (or stream) added to a queue. */
export interface QueueItemOptions {
    /** Name sent to the server. Default: the `File`'s name; required for a plain `Blob` and a stream. */
    filename?: string;
    /** For a stream: about how many bytes it will hold, a hint for the part size (as for {@link Uploader.upload}). */
    expectedSize?: number;
    /**
     * For a file of a folder the user chose: its path within that folder, `/`-separated and ending
     * with the file's name (`photos/2024/a.jpg`); the object key keeps the folders. Default: the
     * `File`'s `webkitRelativePath` (set by `<input webkitdirectory>` and dropped folders), if any.
     */
    relativePath?: string;
    /** MIME type of the object. Default: the Blob's `type`. */
    contentType?: string;
    /** S3 user metadata (`x-amz-meta-*`). */
    metadata?: Record<string, string>;
}

/**
 * Where a queue item is: waiting for its turn, sending, paused (before or after it started),
 * assembling the object, or finished one way or another.
 */
export type QueueItemState =
| "queued"
| "uploading"
| "paused"
| "completing"
| "done"
| "error"
| "cancelled";

/** How many of a queue's items are in which state. */
export interface QueueFileCounts {
    total: number;
    queued: number;
    /** Uploading or completing. */
    active: number;
    paused: number;
    done: number;
    failed: number;
    cancelled: number;
}

/** Progress of a whole queue. Cancelled items count in neither byte figure. */
export interface QueueProgress {
    /** Bytes sent by the items not cancelled (finished ones count whole). */
    bytesSent: number;
    /** Size of the items not cancelled; `null` while a stream among them has not ended. */
    bytesTotal: number | null;
    /** From 0 to 1; exactly 1 only once every item not cancelled is done. */
    fraction: number;
    /** Bytes per second over the last few seconds, all items together; 0 while unknown. */
    speed: number;
    /** Seconds left at the current speed; `null` while unknown. */
    eta: number | null;
    files: QueueFileCounts;
}

/** What each queue event hands its listeners. */
export interface QueueEventMap {
    /** The queue's progress: about 10 times a second while bytes move, and at every state change. */
    progress: QueueProgress;
    /** An item changed state. */
    "item-state": { item: QueueItem; state: QueueItemState };
    /** An item's progress, about 10 times a second while it sends, and at every stored part. */
    "item-progress": { item: QueueItem; progress: UploadProgress };
    /** An item is done; `result.key` is the object's key. */
    "item-complete": { item: QueueItem; result: UploadResult };
    /** An item failed (cancelling is not a failure; see `item-state`). `item.retry()` tries again. */
    "item-error": { item: QueueItem; error: S3DirectError };
    /** Nothing is queued, uploading or completing any more (paused items may remain). */
    idle: undefined;
}

/** The names of the queue's events. */
export type QueueEvent = keyof QueueEventMap;

export interface UploadQueue {
    /**
     * Calls `listener` with each `event`'s detail until the returned function is called. A
     * listener that throws is reported on the console and does not disturb the queue.
     */
    on<K extends QueueEvent>(event: K, listener: (detail: QueueEventMap[K]) => void): () => void;
}



/** Options of an {@link Uploader}. */
export interface UploaderOptions {
    /** Base URL of the s3-direct signing API. Default `"/s3"` (same origin). */
    endpoint?: string;
    /** Most part uploads in flight at once, 1 to 64. Default 6. */
    concurrency?: number;
    /**
     * Preferred part size in bytes, 5 MiB to 5 GiB. Default: by the file's size, about 16 parts
     * of 8 to 16 MiB (8 MiB up to 128 MiB, 16 MiB from 256 MiB). Grown automatically when a
     * file would otherwise need more than 10,000 parts.
     */
    partSize?: number;
    /** Extra headers sent with every call to the signing API, e.g. `Authorization`. */
    headers?: Record<string, string>;
    /**
     * Failed attempts of one part (or failed calls to the signing API in a row) tolerated before
     * the upload fails; the count restarts whenever the part gets further than before. Default 6.
     * Network errors, stalls, 5xx, 408, 429, `SlowDown` and `RequestTimeout` are retried; an
     * expired URL is re-signed without counting; other 4xx fail at once.
     */
    retries?: number;
    /** Milliseconds before the first retry; doubles with each further one, with jitter. Default 1000. */
    retryDelay?: number;
    /** Longest wait between two attempts in milliseconds (a `Retry-After` may be longer). Default 30000. */
    maxRetryDelay?: number;
    /**
     * Milliseconds without bytes moving after which a part is aborted and retried, whatever the
     * link; 0 never. Default: adapted to the link, four times the longest of the latest 64 gaps
     * between progress events the uploads saw, at least 4 s and at most 30 s (30 s for a part
     * still waiting for its connection; for the store's answer after its last byte, 30 s plus
     * the time it took to send).
     */
    stallTimeout?: number;
    /**
     * Keep a resume record in IndexedDB and, when the same file (same name, size, modification
     * time and sampled bytes) is uploaded again after a reload or crash, send only the parts the
     * store lacks. Default true.
     */
    resume?: boolean;
    /**
     * Checksum each part in a Web Worker and sign it into the part's URL, so the store refuses a
     * body damaged on the way: `"auto"` (default) uses what the signing server asks for (it knows
     * what its store verifies), `"off"` reads nothing, or name one of `"md5"` (Content-MD5, checked
     * by every S3-compatible store), `"crc32"`, `"crc32c"`, `"sha256"` (x-amz-checksum-*).
     */
    checksum?: "auto" | "off" | "md5" | "crc32" | "crc32c" | "sha256";
}

/** Options of one {@link Uploader.upload} call. */
export interface UploadOptions {
    /** Called as bytes go out, throttled to about 10 calls a second, and when a part is stored. */
    onProgress?: (progress: UploadProgress) => void;
    /** Aborting it cancels the upload and deletes its stored parts (and cancels a stream). */
    signal?: AbortSignal;
    /** Name sent to the server. Default: the `File`'s name; required for a plain `Blob` and a stream. */
    filename?: string;
    /**
     * For a file of a folder the user chose: its path within that folder, `/`-separated and ending
     * with the file's name (`photos/2024/a.jpg`); the object key keeps the folders. Default: the
     * `File`'s `webkitRelativePath` (set by `<input webkitdirectory>` and dropped folders), if any.
     */
    relativePath?: string;
    /** MIME type of the object. Default: the Blob's `type`; for a stream, the server's default. */
    contentType?: string;
    /**
     * For a stream: about how many bytes it will hold, a hint for the part size (a stream may end
     * before it or go past it). Without it (or `partSize`), a stream's parts are 8 MiB, so it may
     * hold at most 10,000 × 8 MiB = 80 GiB; past that the upload fails with `stream_too_large`.
     * Ignored for a `Blob`, whose size is known.
     */
    expectedSize?: number;
    /** S3 user metadata (`x-amz-meta-*`). */
    metadata?: Record<string, string>;
    /**
     * For bytes the caller keeps itself (a stream it spools, see `s3-direct/spool`): the name of
     * the upload's resume record in place of the file's fingerprint. A stream uploaded with it
     * keeps its record and, when it fails (not cancelled), its multipart upload; a `File` of the
     * same bytes uploaded later with the same key resumes it, sending only the parts the store
     * lacks. Ignored with `resume: false`.
     */
    resumeKey?: string;
}

/**
 * Progress of an upload. Numbers never decrease, and `bytesSent === bytesTotal` is reported only
 * once the object is complete. For a stream, `bytesTotal` and `partsTotal` are `null` until the
 * stream ends.
 */
export interface UploadProgress {
    /** Bytes handed to the network: stored parts plus what in-flight parts have sent. */
    bytesSent: number;
    /** Bytes of parts the store has acknowledged. */
    bytesConfirmed: number;
    /** The object's size; `null` while a stream has not ended. */
    bytesTotal: number | null;
    partsDone: number;
    /** `null` while a stream has not ended. */
    partsTotal: number | null;
    /** Bytes per second over the last few seconds; 0 while unknown. */
    speed: number;
    /** Seconds left at the current speed; `null` while unknown. */
    eta: number | null;
    /** What the upload is doing. */
    phase: "uploading" | "paused" | "offline" | "completing" | "done";
}

/** A completed upload. */
export interface UploadResult {
    key: string;
    bucket: string;
    /** URL of the object. */
    location: string;
    /** The object's ETag (for multipart objects not an MD5 of the content). */
    etag: string;
    size: number;
    /**
     * `ALGO:BASE64-N`: the checksum of the parts' checksums (S3's composite form), when parts were
     * checksummed; for a file sent as one PUT, the store's `ALGO:BASE64` when it reports one, else
     * the file's own when it was checksummed; otherwise `null`.
     */
    checksum: string | null;
    /**
     * The CRC32C of the whole object, base64 of its 4 big-endian bytes (S3's form), whatever the
     * part size: the server combines it from the part CRCs the store verified. Set for an upload
     * with `checksum: "crc32c"` on a store that verifies CRC checksums; otherwise `null`.
     */
    crc32c: string | null;
    /** The same for CRC32 parts (`checksum: "crc32"`). */
    crc32: string | null;
    /**
     * The signing server's receipt of the stored object: a compact JWS (`alg: EdDSA`) naming its
     * bucket, key, size, ETag, content type and checksum and the caller, which a backend verifies
     * with the keys at `/.well-known/jwks.json`. A file sent as one PUT gets one too (the server
     * reads it back first); `null` only from a server older than that (it answers no token).
     */
    receipt: string | null;
}

/** Stable codes of {@link S3DirectError}; codes sent by the signing server pass through. */
export type S3DirectErrorCode =
| "aborted"
| "missing_etag"
| "http_error"
| "network_error"
| "stalled"
| "file_unreadable"
| "list_failed"
| "create_failed"
| "sign_failed"
| "complete_failed"
| "invalid_options"
| "file_too_large"
| "stream_failed"
| "stream_too_large"
| (string & {});

/** What an upload rejects with: an `Error` whose `name` is `"S3DirectError"`. */
export interface S3DirectError extends Error {
    name: "S3DirectError";
    code: S3DirectErrorCode;
    /** HTTP status, when an answer caused the failure. */
    status?: number;
    /** Part number, when the failure belongs to one part. */
    part?: number;
}



/**
 * One file of an `UploadQueue`.
 */
export class QueueItem {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Cancels the item; a started multipart upload is aborted and its parts deleted.
     */
    cancel(): void;
    /**
     * Pauses the item: a queued one waits, a started one stops sending (stored parts stay).
     */
    pause(): void;
    /**
     * Continues a paused item, or puts it back in line if it had not started.
     */
    resume(): void;
    /**
     * Queues a failed item again (a multipart upload continues with the parts already stored).
     * No effect unless the item's state is `"error"`.
     */
    retry(): void;
    /**
     * Why the item failed or that it was cancelled (code `aborted`).
     */
    readonly error: S3DirectError | undefined;
    /**
     * 1, 2, 3… in the order the items were added to their queue.
     */
    readonly id: number;
    /**
     * The file name sent to the server.
     */
    readonly name: string;
    /**
     * The item's last progress (zeros until it starts).
     */
    readonly progress: UploadProgress;
    /**
     * Resolves with the `UploadResult`; rejects with an `S3DirectError` when the item fails or
     * is cancelled (code `aborted`). `retry()` replaces it with a new promise.
     */
    readonly promise: Promise<UploadResult>;
    /**
     * The upload's result once the item is done.
     */
    readonly result: UploadResult | undefined;
    /**
     * Size in bytes; `null` for a stream until it ends.
     */
    readonly size: number | null;
    readonly state: QueueItemState;
}

/**
 * One running upload.
 */
export class UploadHandle {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Aborts the upload and deletes its stored parts (and cancels a stream being uploaded); the
     * promise rejects with code `aborted`.
     */
    cancel(): void;
    /**
     * Stops starting parts and aborts those in flight; what is stored stays stored.
     */
    pause(): void;
    /**
     * Continues a paused upload with the parts not yet stored.
     */
    resume(): void;
    /**
     * The last progress reported, or `null` before the first.
     */
    readonly progress: UploadProgress | null;
    /**
     * Resolves with the `UploadResult`; rejects with an `S3DirectError`.
     */
    readonly promise: Promise<UploadResult>;
    /**
     * `"running"`, `"paused"` or `"cancelled"`: what was asked, not what the upload is doing
     * (see `progress.phase`).
     */
    readonly state: "running" | "paused" | "cancelled";
}

/**
 * Uploads many files with one limit of PUTs in flight across all of them.
 */
export class UploadQueue {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Adds `file` (a `File`, or a `Blob` or `ReadableStream<Uint8Array>` with
     * `options.filename`) to the queue and returns its
     * item; it starts when its turn comes. Throws an `S3DirectError` with code
     * `invalid_options` for a file or options that cannot work.
     */
    add(file: Blob | ReadableStream<Uint8Array>, options?: QueueItemOptions | null): QueueItem;
    /**
     * Cancels every item not finished; started uploads are aborted and their parts deleted.
     */
    cancelAll(): void;
    /**
     * Resolves when nothing is queued, uploading or completing (at once if so). Paused items
     * do not keep it waiting.
     */
    idle(): Promise<void>;
    /**
     * Throws an `S3DirectError` with code `invalid_options` when an option cannot work.
     */
    constructor(options?: QueueOptions | null);
    /**
     * Pauses every item that is queued or uploading.
     */
    pauseAll(): void;
    /**
     * Resumes every paused item.
     */
    resumeAll(): void;
    /**
     * Every item, in the order added.
     */
    readonly items: QueueItem[];
    /**
     * The queue's progress now.
     */
    readonly progress: QueueProgress;
}

/**
 * Uploads files to S3-compatible storage through an s3-direct signing server.
 */
export class Uploader {
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Throws an `S3DirectError` with code `invalid_options` when an option cannot work.
     */
    constructor(options?: UploaderOptions | null);
    /**
     * Starts uploading `file` (as in `upload`) and returns a handle to pause, resume or cancel
     * it. The upload's outcome is `handle.promise`.
     */
    start(file: Blob | ReadableStream<Uint8Array>, options?: UploadOptions | null): UploadHandle;
    /**
     * Uploads `file`: a `File`, a `Blob` with `options.filename`, or a `ReadableStream` of
     * `Uint8Array` chunks with `options.filename`, sent as it is read (about concurrency + 1
     * parts held in memory; a stream that errors aborts the upload with `stream_failed`; see the
     * README's "Streams"). Resolves when the object is complete; rejects with an
     * `S3DirectError`. Same as `start(file, options).promise`.
     */
    upload(file: Blob | ReadableStream<Uint8Array>, options?: UploadOptions | null): Promise<UploadResult>;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
}

export type SyncInitInput = BufferSource | WebAssembly.Module;

/**
 * Instantiates the given `module`, which can either be bytes or
 * a precompiled `WebAssembly.Module`.
 *
 * @param {{ module: SyncInitInput }} module - Passing `SyncInitInput` directly is deprecated.
 *
 * @returns {InitOutput}
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/**
 * If `module_or_path` is {RequestInfo} or {URL}, makes a request and
 * for everything else, calls `WebAssembly.instantiate` directly.
 *
 * @param {{ module_or_path: InitInput | Promise<InitInput> }} module_or_path - Passing `InitInput` directly is deprecated.
 *
 * @returns {Promise<InitOutput>}
 */
export default function __wbg_init (module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;
