// One file's upload kept in React state: a thin hook over the s3-direct JS API
// (`Uploader.start()` and its handle). Everything the page shows comes from `UploadState`.
import { useCallback, useEffect, useRef, useState } from 'react';
import init, {
  type S3DirectError,
  type UploadHandle,
  Uploader,
  type UploaderOptions,
  type UploadProgress,
} from 's3-direct';

export type Status = 'idle' | 'uploading' | 'paused' | 'offline' | 'completing' | 'done' | 'error' | 'cancelled';

export interface UploadState {
  status: Status;
  fileName: string | null;
  /** Whole percent of the file sent, rounded down: 100 only once the object is complete. */
  percent: number;
  bytesSent: number;
  bytesTotal: number;
  /** Bytes per second over the last few seconds. */
  speed: number;
  /** Seconds left, or null while unknown. */
  eta: number | null;
  /** The object key the server chose, once the upload is complete. */
  key: string | null;
  error: string | null;
}

const idle: UploadState = {
  status: 'idle', fileName: null, percent: 0, bytesSent: 0, bytesTotal: 0, speed: 0, eta: null,
  key: null, error: null,
};

// The module is instantiated once per page, whichever component asks first.
let ready: Promise<unknown> | null = null;
function loadClient(): Promise<unknown> {
  ready ??= init();
  return ready;
}

const finished = (status: Status) => status === 'done' || status === 'error' || status === 'cancelled';

function percentOf(p: UploadProgress): number {
  if (p.phase === 'done') return 100;
  if (p.bytesTotal === 0) return 0;
  // Rounded down, so 99.99 % shows as 99: 100 appears only with `phase: "done"`.
  return Math.min(99, Math.floor((p.bytesSent * 100) / p.bytesTotal));
}

export function useUpload(options: UploaderOptions) {
  const [state, setState] = useState<UploadState>(idle);
  const [loaded, setLoaded] = useState(false);
  const uploader = useRef<Uploader | null>(null);
  const handle = useRef<UploadHandle | null>(null);
  const optionsKey = JSON.stringify(options);

  useEffect(() => {
    let live = true;
    loadClient().then(() => {
      if (!live) return;
      uploader.current = new Uploader(JSON.parse(optionsKey) as UploaderOptions);
      setLoaded(true);
    }, (err: unknown) => {
      if (live) setState({ ...idle, status: 'error', error: `could not load s3-direct: ${String(err)}` });
    });
    return () => {
      live = false;
      uploader.current?.free();
      uploader.current = null;
    };
  }, [optionsKey]);

  const start = useCallback((file: File) => {
    if (!uploader.current) return;
    handle.current?.cancel();
    setState({ ...idle, status: 'uploading', fileName: file.name, bytesTotal: file.size });
    const h = uploader.current.start(file, {
      onProgress: (p) => setState((s) => (finished(s.status) ? s : {
        ...s,
        status: p.phase,
        percent: percentOf(p),
        bytesSent: p.bytesSent,
        bytesTotal: p.bytesTotal,
        speed: p.speed,
        eta: p.eta,
      })),
    });
    handle.current = h;
    h.promise.then(
      (result) => {
        if (handle.current !== h) return;
        setState((s) => ({ ...s, status: 'done', percent: 100, key: result.key, eta: 0 }));
      },
      (err: S3DirectError) => {
        if (handle.current !== h) return;
        setState((s) => err.code === 'aborted'
          ? { ...s, status: 'cancelled', speed: 0, eta: null }
          : { ...s, status: 'error', speed: 0, eta: null, error: err.message });
      },
    );
  }, []);

  const pause = useCallback(() => {
    handle.current?.pause();
    setState((s) => (s.status === 'uploading' ? { ...s, status: 'paused', speed: 0, eta: null } : s));
  }, []);
  const resume = useCallback(() => {
    handle.current?.resume();
    setState((s) => (s.status === 'paused' ? { ...s, status: 'uploading' } : s));
  }, []);
  const cancel = useCallback(() => handle.current?.cancel(), []);

  return { state, loaded, start, pause, resume, cancel };
}
