// Compiles src/ to dist/ (one .js per .ts, ESM, no bundling) for `npm start` and the benchmark.
// Type checking is `npm run typecheck`'s job; this is esbuild's transpile only, well under a second.
// Running compiled JavaScript instead of through tsx saves the loader-hook thread and the
// transform of every module in the main thread and in each worker thread (~60-90 MB of peak RSS).
import { cpSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const src = path.join(root, 'src');
const dist = path.join(root, 'dist');

const sources = readdirSync(src, { recursive: true, encoding: 'utf8' })
  .filter(
    (file) =>
      file.endsWith('.ts') && !/(\.spec|\.fixture|\.d)\.ts$/.test(file) && !file.startsWith('testing'),
  )
  .map((file) => path.join(src, file));

rmSync(dist, { recursive: true, force: true });
await build({
  entryPoints: sources,
  outdir: dist,
  outbase: src,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
});
for (const file of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
  if (file.endsWith('.mjs')) cpSync(path.join(src, file), path.join(dist, file));
}
