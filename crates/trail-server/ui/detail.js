// The detail panel of the audit page: one event with its diff, proof and JSON.

import { FILTER_KEYS, api, badge, fmt, h, localTime, markSelected, pushUrl, renderFilters, setParam, state, utcTitle } from './app.js';
import { checkProof, checkWitnessed } from './proof.js';

// ---------- detail ----------

export async function openDetail(id, { push = true, focus = true } = {}) {
  const panel = document.querySelector('.detail');
  if (!panel) return;
  state.params.set('event', id);
  if (push) pushUrl();
  markSelected();
  panel.hidden = false;
  document.querySelector('.layout').classList.add('with-detail');
  panel.replaceChildren(h('div', { class: 'state' }, 'Loading…'));
  try {
    const d = await api(`/events/${encodeURIComponent(id)}`);
    if (state.params.get('event') !== id) return;
    renderDetail(panel, d);
    // Focus follows the opened detail (its heading is announced); Esc brings it back.
    if (focus) document.getElementById('detail-title').focus();
  } catch (e) {
    panel.replaceChildren(detailHead(), h('div', { class: 'state error' }, e.status === 404 ? 'This event does not exist or you may not see it.' : `Could not load the event: ${e.message}`));
  }
}

export function closeDetail() {
  const panel = document.querySelector('.detail');
  if (!panel || panel.hidden) return;
  const id = state.params.get('event');
  panel.hidden = true;
  document.querySelector('.layout').classList.remove('with-detail');
  state.params.delete('event');
  pushUrl();
  markSelected();
  const tr = id && document.querySelector(`tbody tr[data-id="${CSS.escape(id)}"]`);
  if (tr) tr.focus();
}


function detailHead() {
  return h('div', { class: 'detail-head' }, h('h2', { tabindex: -1, id: 'detail-title' }, 'Event detail'), h('button', { class: 'link close', 'aria-label': 'Close detail', onclick: closeDetail }, '✕'));
}

function kv(rows) {
  return h('dl', { class: 'kv' }, ...rows.filter(([, v]) => v !== undefined && v !== null && v !== '').flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// A heading and its fields, or nothing when every field is empty.
function section(title, rows) {
  return rows.some(([, v]) => v !== undefined && v !== null && v !== '') ? [h('h3', {}, title), kv(rows)] : [];
}

function jsonBlock(title, value, open = false) {
  if (value === undefined || value === null) return null;
  // The block scrolls: it takes focus so that keyboards can scroll it too.
  return h('details', { class: 'json', open }, h('summary', {}, title), h('pre', { tabindex: 0, 'aria-label': title }, JSON.stringify(value, null, 2)));
}

function renderDetail(panel, d) {
  const e = d.event;
  const a = e.actor || {};
  const r = e.resource || {};
  const c = e.context || {};
  const ws = c.workspace || {};
  // The mark is shown only once this browser has checked the proof itself.
  const proof = d.proof
    ? h('span', { class: 'proof pending', id: 'proof-mark', 'aria-live': 'polite' }, 'Checking the proof in this browser…')
    : h('span', { class: 'proof pending' }, 'Not yet covered by a checkpoint (signed within about a second)');
  if (d.proof) {
    checkProof(e, d.proof).then((r) => {
      const where = `the signed checkpoint of ${fmt(d.proof.size)} entries (entry ${fmt(d.proof.index)})`;
      if (!r.ok) {
        proof.className = 'proof bad';
        proof.textContent = `✗ Not proven: ${r.why}`;
      } else if (r.signature === 'checked') {
        proof.className = 'proof ok';
        proof.textContent = `✓ Included in ${where}; proof and signature checked by this browser`;
        proof.title = `verifier key ${r.key}`;
      } else if (r.signature === 'unchecked') {
        proof.className = 'proof ok';
        proof.textContent = `✓ Included in ${where}; the signature was not checked by this browser (${r.why})`;
      } else {
        proof.className = 'proof bad';
        proof.textContent = `✗ The checkpoint is not proven: ${r.why}`;
      }
    }, (err) => {
      proof.className = 'proof bad';
      proof.textContent = `✗ The proof could not be checked: ${err.message}`;
    });
  }
  const requestLink = e.request_id
    ? h('button', { class: 'link mono', title: 'Show every event of this request', onclick: () => { for (const k of FILTER_KEYS) if (k !== 'sort') state.params.delete(k); setParam('request_id', e.request_id); renderFilters(); } }, e.request_id)
    : null;
  const diff = d.diff && d.diff.length
    ? h('table', { class: 'diff' }, h('thead', {}, h('tr', {}, h('th', {}, 'Field'), h('th', {}, 'Before'), h('th', {}, 'After'))),
      h('tbody', {}, ...d.diff.map((ch) => h('tr', { class: `diff-${ch.kind || ch.op || 'changed'}` },
        h('td', { class: 'mono path' }, ...ch.path.split(/(?<=[.\]])/).flatMap((part, i) => (i ? [h('wbr'), part] : [part]))),
        h('td', { class: 'old' }, ch.old === undefined ? '—' : JSON.stringify(ch.old)),
        h('td', { class: 'new' }, ch.new === undefined ? '—' : JSON.stringify(ch.new))))))
    : null;
  panel.replaceChildren(...[
    detailHead(),
    h('div', { class: 'detail-title' }, h('span', { class: 'type' }, e.action), badge(e.result), e.status_code ? h('span', { class: 'muted' }, `HTTP ${e.status_code}`) : null),
    e.error ? h('div', { class: 'error-box', role: 'note' }, h('strong', {}, 'Error: '), e.error) : null,
    kv([
      ['Event ID', h('span', { class: 'mono' }, e.id)],
      ['Time', h('span', { title: utcTitle(e.timestamp) }, `${localTime(e.timestamp)} (local) · ${e.timestamp}`)],
      ['Received', e.received_at],
      ['Organization', e.org],
      ['Sequence', `#${e.seq}`],
      ['Proof', proof],
      ['Offline proof', d.proof ? h('a', {
        href: `/api/v1/proof/inclusion?org=${encodeURIComponent(e.org)}&index=${d.proof.index}&size=${d.proof.size}&format=tlog-proof`,
        download: `${e.org}-${d.proof.index}.tlog-proof`,
        title: 'A C2SP tlog-proof file: this event, its proof and the signed checkpoint; check it with trail verify FILE --key VKEY',
      }, 'Download (C2SP tlog-proof)') : null],
      ['Installation log', installationRow(e.org, d.proof)],
    ]),
    ...section('Actor', [['Name', a.name], ['Email', a.email], ['ID', a.id], ['Type', a.type], ['Company (as sent)', a.company]]),
    ...section('Request', [['Source IP', e.source_ip], ['User agent', e.user_agent], ['Request ID', requestLink]]),
    e.resource ? h('h3', {}, 'Resource') : null,
    e.resource ? kv([['Type', r.type], ['Name', r.name], ['ID', r.id], ['Parent', r.parent ? `${r.parent.type || ''} ${r.parent.name || ''} ${r.parent.id ? '(' + r.parent.id + ')' : ''}`.trim() : null]]) : null,
    e.context ? h('h3', {}, 'Context') : null,
    e.context ? kv([['Workspace', ws.name || ws.id], ['Project', c.project], ['Cluster', c.cluster], ['Namespace', c.namespace]]) : null,
    diff ? h('h3', {}, 'Changes') : null,
    diff,
    jsonBlock('Parameters (details)', e.details, true),
    jsonBlock('Response', e.response),
    jsonBlock('Before', e.before),
    jsonBlock('After', e.after),
  ].filter(Boolean));
}

// Where the event's checkpoint is in the installation log (every organization's
// checkpoints), whether witnesses cosigned it (checked here, in this browser), and the
// proof of that as a second tlog-proof file.
function installationRow(org, proof) {
  if (!proof) return null;
  const inst = proof.installation;
  if (!inst) return h('span', { class: 'proof pending', id: 'witness-mark' }, 'Not yet in the installation log (appended within about a second)');
  const mark = h('span', { class: 'proof pending', id: 'witness-mark', 'aria-live': 'polite' }, 'Checking in this browser…');
  checkWitnessed(proof).then((r) => {
    if (!r.ok) {
      mark.className = 'proof bad';
      mark.textContent = `✗ ${r.why}`;
    } else if (r.quorum === null) {
      mark.className = 'proof ok';
      mark.textContent = '✓ In the signed installation log (no witnesses configured)';
    } else if (r.quorum) {
      mark.className = 'proof ok';
      mark.textContent = `✓ Witnessed by ${r.cosigners.length} of ${r.total} (${r.cosigners.join(', ')}); cosignatures checked by this browser`;
    } else {
      mark.className = 'proof pending';
      const some = r.cosigners.length ? ` (${r.cosigners.join(', ')} so far)` : '';
      mark.textContent = `Not yet witnessed: ${r.cosigners.length} of ${r.total} cosigned${some}`;
    }
  }, (err) => {
    mark.className = 'proof bad';
    mark.textContent = `✗ Could not be checked: ${err.message}`;
  });
  return h('span', {}, mark, h('br'), `Checkpoint is entry ${fmt(inst.index)} of ${fmt(inst.size)} · `, h('a', {
    href: `/api/v1/checkpoint?org=${encodeURIComponent(org)}&size=${proof.size}&format=tlog-proof`,
    download: `${org}-checkpoint-${proof.size}.tlog-proof`,
    title: 'A C2SP tlog-proof file: the checkpoint, proved into the installation log with its cosignatures; check it with trail verify FILE --key VKEY --policy POLICY',
  }, 'Download (C2SP tlog-proof)'));
}
