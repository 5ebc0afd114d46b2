// Types of `s3-direct/widget`: the <s3-direct-upload> custom element. Importing the module defines
// the element (once per page) and loads the wasm client next to it.
import type { UploadProgress } from "./s3_direct.js";

/** What the element is doing, as a whole; also its `state` attribute and `:state()` custom state. */
export type S3DirectUploadState = "idle" | "uploading" | "paused" | "error" | "done";

/** State of one file's row. */
export type S3DirectUploadItemState =
  | "queued"
  | "uploading"
  | "paused"
  | "completing"
  | "done"
  | "error"
  | "cancelled";

/** A snapshot of one row, from {@link S3DirectUploadElement.items}. */
export interface S3DirectUploadItem {
  /** Unique among the rows of this page. */
  id: number;
  /** The file's name, or for a file of a folder its path within the folder (`photos/a.jpg`). */
  name: string;
  /** For a file of a folder: its path within the folder (the key keeps the folders); else null. */
  path: string | null;
  /** For a file of a chosen or dropped folder: the folder's name (its group's); else null. */
  group: string | null;
  /** `null` for a stream (`addStream`) until it ends. */
  size: number | null;
  state: S3DirectUploadItemState;
  progress: UploadProgress | null;
  result: {
    key: string;
    bucket: string;
    location: string;
    etag: string;
    size: number;
    checksum?: string | null;
    receipt?: string | null;
  } | null;
  /** `message` is the sentence shown to the person; `detail` the technical message. */
  error: { code: string; message: string; detail: string } | null;
}

/**
 * A snapshot of one chosen or dropped folder, from {@link S3DirectUploadElement.groups}: the
 * element shows it as one row over its files' rows.
 */
export interface S3DirectUploadGroup {
  /** Unique among the rows of this page. */
  id: number;
  /** The folder's name, as in its files' `group`. */
  name: string;
  /** `uploading` while any file is waiting, uploading or finishing; `error` once only failed ones are left unfinished. */
  state: "uploading" | "paused" | "done" | "error" | "cancelled";
  /** Files not cancelled. */
  files: number;
  done: number;
  failed: number;
  /** The folder's bar, 0 to 1: never goes back, and 1 only once every file is done. */
  fraction: number;
}

export interface UploadStartDetail {
  id: number;
  name: string;
  /** `null` for a stream. */
  size: number | null;
  /** `null` for a stream added with `addStream`. */
  file: File | null;
}

export interface UploadProgressDetail {
  id: number;
  name: string;
  bytesSent: number;
  bytesTotal: number;
  /** `bytesSent / bytesTotal`, 0 to 1. */
  fraction: number;
  /** Bytes per second; 0 while unknown. */
  speed: number;
  /** Seconds left; `null` while unknown. */
  eta: number | null;
  phase: UploadProgress["phase"];
}

export interface UploadCompleteDetail {
  id: number;
  /** The object key (what the form submits under the element's `name` with `form-value="key"`). */
  key: string;
  bucket: string;
  location: string;
  etag: string;
  size: number;
  checksum: string | null;
  /**
   * The signing server's signed receipt of the object (a compact JWS to verify with the keys at
   * `/.well-known/jwks.json`): what the form submits by default. `null` only from a server too old
   * to verify a file sent as one PUT.
   */
  receipt: string | null;
  /** The file's name as chosen. */
  fileName: string;
}

export interface UploadErrorDetail {
  id: number;
  name: string;
  /** Stable code: the client's (`network_error`, `http_error`, …), the signing server's
   * (`forbidden`, `unauthenticated`, …), or the element's own `file_too_large`,
   * `file_type_not_accepted`, `client_unavailable`, `invalid_options`. */
  code: string;
  /** The sentence shown to the person. */
  message: string;
  /** The technical message. */
  detail: string;
  status?: number;
  /** The original error (an `S3DirectError` when the client raised it). */
  error: unknown;
}

export interface UploadCancelDetail {
  id: number;
  name: string;
  /** `null` for a stream cancelled before it ended. */
  size: number | null;
}

export interface QueueCompleteDetail {
  /** Keys of every completed upload in the element, in the order the files were added. */
  keys: string[];
  done: number;
  failed: number;
  cancelled: number;
}

export interface S3DirectUploadEventMap extends HTMLElementEventMap {
  "upload-start": CustomEvent<UploadStartDetail>;
  "upload-progress": CustomEvent<UploadProgressDetail>;
  "upload-complete": CustomEvent<UploadCompleteDetail>;
  "upload-error": CustomEvent<UploadErrorDetail>;
  "upload-cancel": CustomEvent<UploadCancelDetail>;
  "queue-complete": CustomEvent<QueueCompleteDetail>;
}

/**
 * `<s3-direct-upload>`: a form-associated upload field. Each completed upload's receipt (or its key,
 * with `form-value="key"`) is submitted under `name`; while files are unfinished (or failed and not removed) the element is invalid, so
 * the form does not submit.
 */
export class S3DirectUploadElement extends HTMLElement {
  static readonly formAssociated: true;
  /** Signing API base URL (attribute `endpoint`). Default `"/s3"`. */
  endpoint: string;
  /** Form field name of the submitted values (attribute `name`). */
  name: string;
  /**
   * What the form submits for each completed upload (attribute `form-value`): `"receipt"` (the
   * default), the server's signed receipt, which a backend verifies instead of trusting the
   * browser (the key when the server gave none), or `"key"`, the object key.
   */
  formValue: "receipt" | "key";
  /** File types, as `<input type=file accept>` (attribute `accept`); also enforced on drop. */
  accept: string;
  /** Allow several files (attribute `multiple`); without it a new choice replaces the file. */
  multiple: boolean;
  /**
   * The picker chooses a folder (attribute `folders`; `<input webkitdirectory>`). Folders dropped
   * on the element are taken either way: every file keeps its path within the folder in its key
   * (`{prefix}{id}/{folders}/{name}`), and an empty folder is noted below the list. Each folder is
   * one row (see `groups`) with Pause / Resume, Cancel and Retry acting on all its files; each file
   * still posts its own form value.
   */
  folders: boolean;
  /** The form cannot submit without one completed upload (attribute `required`). */
  required: boolean;
  disabled: boolean;
  /** Largest file in bytes (attribute `max-size`, e.g. `"10MB"`, `"2 GiB"`). */
  maxSize: number | undefined;
  /** Part PUTs in flight across all files (attribute `concurrency`). */
  concurrency: number | undefined;
  /** Part size in bytes (attribute `part-size`, e.g. `"8MiB"`). */
  partSize: number | undefined;
  /** Part checksums (attribute `checksum`). */
  checksum: "auto" | "off" | "md5" | "crc32" | "crc32c" | "sha256";
  /** Extra headers for every call to the signing API, e.g. `{ Authorization: "Bearer …" }`. */
  headers: Record<string, string>;
  /** Sentences shown for error codes, replacing the built-in English ones. */
  messages: Record<string, string>;
  readonly state: S3DirectUploadState;
  /** Keys of the completed uploads, in the order the files were added. */
  readonly keys: string[];
  /** What the form submits (see `formValue`), in the order the files were added. */
  readonly values: string[];
  readonly items: S3DirectUploadItem[];
  /** The chosen or dropped folders, in the order they were added. */
  readonly groups: S3DirectUploadGroup[];
  /** Bytes of every row that is not failed or cancelled. */
  /** `bytesTotal` is `null` while a stream has not ended. */
  readonly progress: { bytesSent: number; bytesTotal: number | null; fraction: number };
  readonly form: HTMLFormElement | null;
  readonly type: "s3-direct-upload";
  readonly validity: ValidityState;
  readonly validationMessage: string;
  readonly willValidate: boolean;
  checkValidity(): boolean;
  reportValidity(): boolean;
  /** Adds files as if they were chosen in the picker (checked against `accept` and `max-size`). */
  addFiles(files: Iterable<File> | FileList): void;
  /**
   * Adds a stream as a row of its own, uploaded as it is read (`filename` required; its `size` is
   * `null` until it ends; a failed stream cannot be retried). Not checked against `accept` or
   * `max-size`: the server's limits hold it.
   */
  addStream(
    stream: ReadableStream<Uint8Array>,
    options: { filename: string; contentType?: string; expectedSize?: number },
  ): void;
  pauseAll(): void;
  resumeAll(): void;
  cancelAll(): void;
  /** Cancels unfinished uploads and removes every row. */
  clear(): void;

  addEventListener<K extends keyof S3DirectUploadEventMap>(
    type: K,
    listener: (this: S3DirectUploadElement, ev: S3DirectUploadEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof S3DirectUploadEventMap>(
    type: K,
    listener: (this: S3DirectUploadElement, ev: S3DirectUploadEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | EventListenerOptions,
  ): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "s3-direct-upload": S3DirectUploadElement;
  }
}
