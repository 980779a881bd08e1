// Prints, for each folder under src/, the other project folders (and notable packages) its
// non-test modules import. Used to describe the layering; the enforced rules are in
// .dependency-cruiser.cjs.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(process.argv[2] ?? 'src');
const folders = readdirSync(root, { withFileTypes: true }).filter((entry) => entry.isDirectory());
const watched = new Set(['fastify', 'undici', 'pg', 'better-sqlite3', 'vitest', 'pino']);
for (const folder of folders) {
  const imports = new Set();
  const files = readdirSync(path.join(root, folder.name), { recursive: true, encoding: 'utf8' }).filter(
    (file) => file.endsWith('.ts') && !file.includes('.spec.') && !file.includes('.fixture.'),
  );
  for (const file of files) {
    const full = path.join(root, folder.name, file);
    const text = readFileSync(full, 'utf8');
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      const specifier = match[1];
      if (specifier.startsWith('.')) {
        const target = path.relative(root, path.resolve(path.dirname(full), specifier)).split(path.sep)[0];
        if (target !== folder.name && !target.startsWith('..')) imports.add(target);
      } else {
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
        if (watched.has(name)) imports.add(`pkg:${name}`);
      }
    }
  }
  console.log(`${folder.name}: ${[...imports].sort().join(', ') || '(nothing of the project)'}`);
}
