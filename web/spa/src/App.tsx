import { type ChangeEvent } from 'react';
import type { UploaderOptions } from 's3-direct';
import { type UploadState, useUpload } from './useUpload';

// Options can be tried out from the address bar: `?checksum=md5&partSize=5` (MiB).
const query = new URLSearchParams(window.location.search);
const options: UploaderOptions = {
  endpoint: '/s3',
  checksum: (query.get('checksum') as UploaderOptions['checksum']) ?? 'auto',
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

function Details({ state }: { state: UploadState }) {
  if (state.status === 'done') return <p>Stored as <code data-testid="key">{state.key}</code></p>;
  if (state.status === 'error') return <p role="alert" className="error">{state.error}</p>;
  if (state.status === 'cancelled') return <p>Cancelled; nothing was kept.</p>;
  if (state.status === 'idle') return <p>Choose a file to upload it.</p>;
  const eta = state.eta === null ? '' : `, ${Math.ceil(state.eta)} s left`;
  return (
    <p>
      {formatBytes(state.bytesSent)} of {formatBytes(state.bytesTotal)}
      {state.speed > 0 ? ` at ${formatBytes(state.speed)}/s${eta}` : ''}
    </p>
  );
}

export default function App() {
  const { state, loaded, start, pause, resume, cancel } = useUpload(options);
  const active = ['uploading', 'paused', 'offline', 'completing'].includes(state.status);

  const onFile = (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (file) start(file);
    e.target.value = '';
  };

  return (
    <main data-ready={loaded} data-status={state.status}>
      <h1>s3-direct in a Vite app</h1>
      <label className="picker">
        File <input type="file" data-testid="file" onChange={onFile} disabled={!loaded || active} />
      </label>
      {state.fileName && <h2>{state.fileName}</h2>}
      <progress max={100} value={state.percent} aria-label="upload progress" />
      <span data-testid="percent">{state.percent}</span> %
      <span className="status" data-testid="status"> · {state.status}</span>
      <Details state={state} />
      <div className="buttons">
        <button type="button" onClick={pause} disabled={state.status !== 'uploading'}>Pause</button>
        <button type="button" onClick={resume} disabled={state.status !== 'paused'}>Resume</button>
        <button type="button" onClick={cancel} disabled={!active}>Cancel</button>
      </div>
    </main>
  );
}
