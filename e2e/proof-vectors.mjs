// The page's own proof check (crates/trail-server/ui/proof.js) against every inclusion
// case of the shared RFC 6962 / RFC 9162 vectors: accepted exactly when not `wantErr`.
// Usage: node proof-vectors.mjs <vectors/merkle dir>; prints "N passed, M failed".
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { rootFromProof } = await import(path.join(here, '../crates/trail-server/ui/proof.js'));
const dir = path.join(process.argv[2], 'inclusion');

function files(d) {
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(d, e.name)) : e.name.endsWith('.json') ? [path.join(d, e.name)] : []);
}

const b64 = (s) => Uint8Array.from(Buffer.from(s, 'base64'));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
let passed = 0;
let failed = 0;
for (const f of files(dir).sort()) {
  // Sizes may exceed 2^53: read the integers as text.
  const c = JSON.parse(fs.readFileSync(f, 'utf8').replace(/"(leafIdx|treeSize)":\s*(-?\d+)/g, '"$1":"$2"'));
  let accepted = false;
  try {
    const leaf = b64(c.leafHash);
    const proof = (c.proof || []).map(b64);
    if (leaf.length === 32 && proof.every((p) => p.length === 32)) {
      const root = await rootFromProof(c.leafIdx, c.treeSize, leaf, proof);
      accepted = !!root && same(root, b64(c.root));
    }
  } catch {
    accepted = false;
  }
  if (accepted === !c.wantErr) {
    passed++;
  } else {
    failed++;
    console.log(`FAIL ${path.relative(dir, f)}: ${c.desc}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
