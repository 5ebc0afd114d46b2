// Types of `s3-direct/spool`: uploads of a stream that survive a reload, through a spool file in
// the origin private file system. Needs a browser with OPFS synchronous access handles in
// dedicated workers.
import type { S3DirectError, UploadProgress, UploadResult, Uploader } from "./s3_direct.js";

/** What a spooled stream may give: bytes in any of these forms. */
export type SpoolChunk = Uint8Array | ArrayBuffer | ArrayBufferView | Blob;

/** Options of {@link uploadSpooled}. */
export interface SpoolOptions {
  /** Name sent to the server, and kept with the spool for a resume. */
  filename: string;
  /** MIME type of the object. Default: none (the server's default). */
  contentType?: string;
  /** S3 user metadata (`x-amz-meta-*`), kept with the spool for a resume. */
  metadata?: Record<string, string>;
  /** A hint for the part size, as for a stream given to `Uploader.upload`. */
  expectedSize?: number;
  /** The spool's name: 1 to 100 letters, digits, `-` or `_`. Default: a random UUID. */
  id?: string;
  /** As `Uploader.upload`'s; the total is unknown (0) until the stream ends. */
  onProgress?: (progress: UploadProgress) => void;
  /** Aborting it cancels the upload, cancels the stream and removes the spool. */
  signal?: AbortSignal;
}

/** What {@link uploadSpooled} rejects with when the upload failed but was not cancelled. */
export interface SpooledUploadError extends S3DirectError {
  /**
   * Resolves once the stream ended (or the spool could take no more of it), with its spool to
   * {@link SpooledUpload.resume}, or `null` when no spool is left.
   */
  spooled?: Promise<SpooledUpload | null>;
}

/** A spool an earlier page left, from {@link spooledUploads}. */
export interface SpooledUpload {
  readonly id: string;
  readonly filename: string;
  readonly contentType: string;
  readonly metadata: Record<string, string> | undefined;
  readonly expectedSize: number | null;
  /** When the spool was started, milliseconds since the epoch. */
  readonly created: number;
  /** Bytes in the spool. */
  readonly size: number;
  /** The spooled bytes. */
  file(): Promise<File>;
  /**
   * Uploads the spool with its resume key, so only the parts the store lacks are sent; removes
   * the spool once the object is complete or the upload is cancelled. Rejects at once while a
   * page of this origin is writing or uploading the spool (it holds the spool's Web Lock).
   */
  resume(
    uploader: Uploader,
    options?: { onProgress?: (progress: UploadProgress) => void; signal?: AbortSignal },
  ): Promise<UploadResult>;
  /** Removes the spool (its multipart upload, if any, is left to the store's lifecycle rule). */
  discard(): Promise<void>;
}

/**
 * Uploads `stream` with `uploader`, writing each chunk durably to a spool before the upload gets
 * it. Resolves once the object is complete (the spool removed); rejects with the upload's error
 * (a {@link SpooledUploadError} unless cancelled).
 */
export function uploadSpooled(
  uploader: Uploader,
  stream: ReadableStream<SpoolChunk>,
  options: SpoolOptions,
): Promise<UploadResult>;

/**
 * The spools earlier pages left, oldest first: not those a page of this origin (this tab or
 * another) is writing or uploading, which hold the spool's Web Lock until they end or go.
 */
export function spooledUploads(): Promise<SpooledUpload[]>;

/** The `resumeKey` an upload of spool `id` carries. */
export function spoolResumeKey(id: string): string;
