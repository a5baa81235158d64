// The detail's inclusion mark, checked in the browser itself: the SHA-256 of the
// event's stored bytes hashed up its proof (RFC 9162) must give the checkpoint's root,
// and the checkpoint's Ed25519 signature must verify under the verifier key (WebCrypto).
// Nothing here trusts the server's word that the event is included.

const enc = new TextEncoder();

function unb64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

const leafHash = (bytes) => sha256(concat(new Uint8Array([0]), bytes));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// RFC 9162, 2.1.3.2: the root an inclusion proof leads to, or null when it cannot.
export async function rootFromProof(index, size, leaf, proof) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn > sn) return null;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? r : null;
}

// `{ok, signature, why}`: ok when the bytes are the shown event and prove into the
// checkpoint's root; signature is 'checked', 'failed' or 'unchecked' (the browser has
// no Ed25519), with why for anything that failed.
export async function checkProof(event, p) {
  if (!globalThis.crypto || !crypto.subtle) return { ok: false, signature: 'unchecked', why: 'this browser cannot hash here (not a secure context)' };
  const bytes = unb64(p.leaf);
  let shown;
  try { shown = JSON.parse(new TextDecoder().decode(bytes)); } catch { return { ok: false, why: 'the stored bytes are not JSON' }; }
  if (JSON.stringify(shown) !== JSON.stringify(event)) return { ok: false, why: 'the stored bytes are not the event shown' };
  const split = p.checkpoint.indexOf('\n\n');
  if (split < 0) return { ok: false, why: 'the checkpoint is malformed' };
  const body = p.checkpoint.slice(0, split + 1);
  const [origin, sizeLine, rootLine] = body.split('\n');
  if (sizeLine !== String(p.size)) return { ok: false, why: 'the checkpoint is of another size' };
  const root = await rootFromProof(p.index, p.size, await leafHash(bytes), p.proof.map(unb64));
  if (!root || !same(root, unb64(rootLine))) return { ok: false, why: 'the proof does not lead to the checkpoint\'s root' };
  return { ok: true, ...(await checkSignature(origin, body, p.checkpoint.slice(split + 2), p.verifier_key)) };
}

async function checkSignature(origin, body, sigs, vkey) {
  if (!vkey) return { signature: 'unchecked', why: 'no verifier key was given' };
  // `<name>+<key hash>+<base64 key>`: the key's base64 may itself hold a '+'.
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  if (first < 0 || second < 0) return { signature: 'failed', why: 'the verifier key is malformed' };
  const [name, hash, key] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
  const raw = unb64(key || '');
  if (name !== origin || raw.length !== 33 || raw[0] !== 1) return { signature: 'failed', why: 'the verifier key is not this log\'s' };
  let pub;
  try {
    pub = await crypto.subtle.importKey('raw', raw.slice(1), { name: 'Ed25519' }, false, ['verify']);
  } catch {
    return { signature: 'unchecked', why: 'this browser has no Ed25519' };
  }
  for (const line of sigs.split('\n')) {
    const m = line.match(/^\u2014 (\S+) (\S+)$/);
    if (!m || m[1] !== name) continue;
    const sig = unb64(m[2]);
    const keyHash = [...sig.slice(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join('');
    if (keyHash !== hash || sig.length !== 68) continue;
    if (await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig.slice(4), enc.encode(body))) return { signature: 'checked', key: `${name}+${hash}` };
    return { signature: 'failed', why: 'the checkpoint\'s signature does not verify' };
  }
  return { signature: 'failed', why: 'the checkpoint carries no signature by the verifier key' };
}

// The event's checkpoint in the installation log, and that log's checkpoint witnessed:
// the checkpoint's entry (SHA-256 of its note body) proved into the installation
// checkpoint, whose signature verifies under the installation key, and each witness's
// cosignature (C2SP tlog-cosignature v1: `cosignature/v1`, `time T`, the body) checked
// with its key. `{ok, why, cosigners, total, quorum}`; quorum is the policy's rule met.
export async function checkWitnessed(p) {
  const inst = p.installation;
  if (!inst) return { ok: false, why: 'not yet in the installation log' };
  const orgBody = p.checkpoint.slice(0, p.checkpoint.indexOf('\n\n') + 1);
  const entry = await sha256(enc.encode(orgBody));
  const split = inst.checkpoint.indexOf('\n\n');
  if (split < 0) return { ok: false, why: 'the installation checkpoint is malformed' };
  const body = inst.checkpoint.slice(0, split + 1);
  const [origin, sizeLine, rootLine] = body.split('\n');
  if (sizeLine !== String(inst.size)) return { ok: false, why: 'the installation checkpoint is of another size' };
  const root = await rootFromProof(inst.index, inst.size, await leafHash(entry), inst.proof.map(unb64));
  if (!root || !same(root, unb64(rootLine))) return { ok: false, why: 'the checkpoint is not proved into the installation log' };
  const sigs = inst.checkpoint.slice(split + 2);
  const signed = await checkSignature(origin, body, sigs, p.installation_key);
  if (signed.signature !== 'checked') return { ok: false, why: `the installation checkpoint: ${signed.why}` };
  const w = p.witnesses;
  if (!w) return { ok: true, cosigners: [], total: 0, quorum: null };
  const cosigners = [];
  for (const x of w.witnesses) {
    if (await cosigned(body, sigs, x)) cosigners.push(x.name);
  }
  return { ok: true, cosigners, total: w.witnesses.length, quorum: met(w.quorum, new Set(cosigners)) };
}

async function cosigned(body, sigs, x) {
  const pub = unb64(x.key);
  const id = (await sha256(concat(enc.encode(`${x.key_name}\n`), new Uint8Array([4]), pub))).slice(0, 4);
  let key;
  try { key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']); } catch { return false; }
  for (const line of sigs.split('\n')) {
    const m = line.match(/^\u2014 (\S+) (\S+)$/);
    if (!m || m[1] !== x.key_name) continue;
    const blob = unb64(m[2]);
    if (blob.length !== 76 || !same(blob.slice(0, 4), id)) continue;
    const t = new DataView(blob.buffer).getBigUint64(4);
    const msg = enc.encode(`cosignature/v1\ntime ${t}\n${body}`);
    return crypto.subtle.verify({ name: 'Ed25519' }, key, blob.slice(12), msg);
  }
  return false;
}

// The policy's quorum tree: a witness's name, or `{k, of}`; null is `quorum none`.
function met(q, cosigners) {
  if (q === null || q === undefined) return true;
  if (typeof q === 'string') return cosigners.has(q);
  return q.of.filter((m) => met(m, cosigners)).length >= q.k;
}
