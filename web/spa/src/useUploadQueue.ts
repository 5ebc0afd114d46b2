// Uploads kept in React state: a thin hook over the s3-direct JS API (`UploadQueue`). The queue
// runs the uploads; its events are folded into `QueueView`, and everything the page shows comes
// from there.
import { useCallback, useEffect, useRef, useState } from 'react';
import init, {
  type QueueItem,
  type QueueItemState,
  type QueueOptions,
  type QueueProgress,
  type UploadProgress,
  UploadQueue,
} from 's3-direct';

/** One file as the page shows it. */
export interface FileRow {
  id: number;
  name: string;
  /** Bytes; null for a stream until it ends (this page adds files only). */
  size: number | null;
  state: QueueItemState;
  /** Whole percent sent, rounded down: 100 only once the object is complete. */
  percent: number;
  bytesSent: number;
  /** Bytes per second over the last few seconds. */
  speed: number;
  /** Seconds left, or null while unknown. */
  eta: number | null;
  /** The object key the server chose, once done. */
  key: string | null;
  error: string | null;
}

export interface QueueView {
  rows: FileRow[];
  /** Whole percent of all files not cancelled; 100 only once every one of them is done. */
  percent: number;
  speed: number;
  eta: number | null;
}

const empty: QueueView = { rows: [], percent: 0, speed: 0, eta: null };

// The module is instantiated once per page, whichever component asks first.
let ready: Promise<unknown> | null = null;
function loadClient(): Promise<unknown> {
  ready ??= init();
  return ready;
}

function itemPercent(state: QueueItemState, p: UploadProgress): number {
  if (state === 'done') return 100;
  // No total yet (a stream still being read), or nothing to send.
  if (!p.bytesTotal) return 0;
  // Rounded down and capped, so 99.99 % shows as 99: 100 appears only with the object complete.
  return Math.min(99, Math.floor((p.bytesSent * 100) / p.bytesTotal));
}

function totalPercent(p: QueueProgress): number {
  return p.fraction === 1 ? 100 : Math.min(99, Math.floor(p.fraction * 100));
}

function updateRow(view: QueueView, id: number, change: (row: FileRow) => FileRow): QueueView {
  return { ...view, rows: view.rows.map((r) => (r.id === id ? change(r) : r)) };
}

export function useUploadQueue(options: QueueOptions) {
  const [view, setView] = useState<QueueView>(empty);
  const [status, setStatus] = useState<'loading' | 'ready' | 'failed'>('loading');
  const [loadError, setLoadError] = useState<string | null>(null);
  const queue = useRef<UploadQueue | null>(null);
  const items = useRef(new Map<number, QueueItem>());
  const optionsKey = JSON.stringify(options);

  useEffect(() => {
    let live = true;
    const unsubscribe: Array<() => void> = [];
    loadClient().then(() => {
      if (!live) return;
      const q = new UploadQueue(JSON.parse(optionsKey) as QueueOptions);
      queue.current = q;
      unsubscribe.push(
        q.on('item-state', ({ item, state }) => setView((v) => updateRow(v, item.id, (r) => ({
          ...r,
          state,
          percent: itemPercent(state, item.progress),
          ...(state === 'uploading' ? {} : { speed: 0, eta: state === 'done' ? 0 : null }),
        })))),
        q.on('item-progress', ({ item, progress }) => setView((v) => updateRow(v, item.id, (r) => ({
          ...r,
          percent: itemPercent(r.state, progress),
          bytesSent: progress.bytesSent,
          speed: progress.speed,
          eta: progress.eta,
        })))),
        q.on('item-complete', ({ item, result }) => setView((v) => updateRow(v, item.id, (r) => ({
          ...r, state: 'done', percent: 100, size: result.size, bytesSent: result.size, key: result.key,
        })))),
        q.on('item-error', ({ item, error }) => setView((v) => updateRow(v, item.id, (r) => ({
          ...r, error: error.message,
        })))),
        q.on('progress', (p) => setView((v) => ({
          ...v, percent: totalPercent(p), speed: p.speed, eta: p.eta,
        }))),
      );
      setStatus('ready');
    }, (err: unknown) => {
      if (!live) return;
      setStatus('failed');
      setLoadError(`could not load s3-direct: ${String(err)}`);
    });
    return () => {
      live = false;
      unsubscribe.forEach((off) => off());
      queue.current?.cancelAll();
      queue.current?.free();
      queue.current = null;
      items.current.clear();
    };
  }, [optionsKey]);

  const add = useCallback((files: Iterable<File>) => {
    const q = queue.current;
    if (!q) return;
    for (const file of files) {
      const item = q.add(file);
      items.current.set(item.id, item);
      setView((v) => ({
        ...v,
        rows: [...v.rows, {
          id: item.id, name: item.name, size: item.size, state: item.state, percent: 0,
          bytesSent: 0, speed: 0, eta: null, key: null, error: null,
        }],
      }));
    }
  }, []);

  const item = (id: number) => items.current.get(id);
  return {
    view,
    status,
    loadError,
    add,
    pause: useCallback((id: number) => item(id)?.pause(), []),
    resume: useCallback((id: number) => item(id)?.resume(), []),
    cancel: useCallback((id: number) => item(id)?.cancel(), []),
    retry: useCallback((id: number) => item(id)?.retry(), []),
    pauseAll: useCallback(() => queue.current?.pauseAll(), []),
    resumeAll: useCallback(() => queue.current?.resumeAll(), []),
    cancelAll: useCallback(() => queue.current?.cancelAll(), []),
  };
}
