import { type ChangeEvent } from 'react';
import type { QueueOptions } from 's3-direct';
import { type FileRow, useUploadQueue } from './useUploadQueue';

// Options can be tried out from the address bar: `?checksum=md5&partSize=5` (MiB).
const query = new URLSearchParams(window.location.search);
const options: QueueOptions = {
  endpoint: '/s3',
  checksum: (query.get('checksum') as QueueOptions['checksum']) ?? 'auto',
  ...(query.has('partSize') ? { partSize: Number(query.get('partSize')) * 1024 * 1024 } : {}),
};

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function detail(row: FileRow): string {
  switch (row.state) {
    case 'done': return 'stored';
    case 'error': return row.error ?? 'failed';
    case 'cancelled': return 'cancelled; nothing was kept';
    case 'queued': return 'waiting';
    default: {
      const speed = row.speed > 0 ? ` at ${formatBytes(row.speed)}/s` : '';
      const eta = row.eta === null ? '' : `, ${Math.ceil(row.eta)} s left`;
      const of = row.size === null ? '' : ` of ${formatBytes(row.size)}`;
      return `${formatBytes(row.bytesSent)}${of}${speed}${eta}`;
    }
  }
}

interface RowProps {
  row: FileRow;
  onPause: (id: number) => void;
  onResume: (id: number) => void;
  onCancel: (id: number) => void;
  onRetry: (id: number) => void;
}

function Row({ row, onPause, onResume, onCancel, onRetry }: RowProps) {
  const finished = row.state === 'done' || row.state === 'cancelled';
  return (
    <li className="file" data-testid="file-row" data-state={row.state}>
      <div className="name">{row.name}</div>
      <progress max={100} value={row.percent} aria-label={`${row.name} progress`} />
      <span data-testid="percent">{row.percent}</span> % · <span data-testid="state">{row.state}</span>
      <div className={row.state === 'error' ? 'detail error' : 'detail'} role={row.state === 'error' ? 'alert' : undefined}>
        {detail(row)}
      </div>
      {row.key && <div>key <code data-testid="key">{row.key}</code></div>}
      <div className="buttons">
        {row.state === 'paused'
          ? <button type="button" onClick={() => onResume(row.id)}>Resume</button>
          : <button type="button" onClick={() => onPause(row.id)} disabled={finished || row.state === 'error'}>Pause</button>}
        {row.state === 'error' && <button type="button" onClick={() => onRetry(row.id)}>Retry</button>}
        <button type="button" onClick={() => onCancel(row.id)} disabled={finished}>Cancel</button>
      </div>
    </li>
  );
}

export default function App() {
  const { view, status, loadError, add, pause, resume, cancel, retry, pauseAll, resumeAll, cancelAll } = useUploadQueue(options);

  const onFiles = (e: ChangeEvent<HTMLInputElement>) => {
    if (e.target.files) add(Array.from(e.target.files));
    e.target.value = '';
  };

  return (
    <main data-ready={status === 'ready'}>
      <h1>s3-direct in a Vite app</h1>
      {loadError && <p role="alert" className="error">{loadError}</p>}
      <label className="picker">
        Files <input type="file" multiple data-testid="files" onChange={onFiles} disabled={status !== 'ready'} />
      </label>
      <section aria-label="all files">
        <progress max={100} value={view.percent} aria-label="total progress" />
        <span data-testid="total-percent">{view.percent}</span> % of all files
        {view.speed > 0 && <> at {formatBytes(view.speed)}/s</>}
        <div className="buttons">
          <button type="button" onClick={pauseAll}>Pause all</button>
          <button type="button" onClick={resumeAll}>Resume all</button>
          <button type="button" onClick={cancelAll}>Cancel all</button>
        </div>
      </section>
      <ul className="files">
        {view.rows.map((row) => (
          <Row key={row.id} row={row} onPause={pause} onResume={resume} onCancel={cancel} onRetry={retry} />
        ))}
      </ul>
    </main>
  );
}
