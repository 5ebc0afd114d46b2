import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// s3-direct needs no configuration here: Vite finds its `.wasm` and its checksum worker through
// the `new URL(…, import.meta.url)` references in the package, in `vite build` and in `vite`.
// (Vite 7 and older need `optimizeDeps: { exclude: ['s3-direct'] }` for `vite`: their
// pre-bundling moves the package's JS away from its `.wasm`.)
//
// The signing server that `vite` and `vite preview` forward `/s3` to, so the app calls it on its
// own origin. In production, serve `dist/` from the same origin as the API (for example
// `s3-direct --web-dir dist`) or list the app's origin with `s3-direct --cors-origin`.
const signingServer = process.env.S3_DIRECT_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  // The checksum worker as an ES module like the rest of the app. With Vite's default (iife) it
  // works the same, but Vite warns that the worker's entry (the package's glue) has exports.
  worker: { format: 'es' },
  server: { proxy: { '/s3': signingServer } },
  preview: { proxy: { '/s3': signingServer } },
});
