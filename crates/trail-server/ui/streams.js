// The Streams dialog: each stream of the organization's events to a SIEM with its
// health (status, last seq delivered, lag in events and seconds, sent and failed
// counts, last error), refreshed while the dialog is open; administrators make
// streams (a signing secret shown once), pause, resume, replay and delete them.

import { api, fmt, h, localTime, state } from './app.js';

const FORMATS = { http: [['jsonl', 'JSON Lines (stored bytes)'], ['ocsf', 'OCSF'], ['splunk_hec', 'Splunk HEC']],
  syslog: [['cef', 'CEF'], ['jsonl', 'JSON Lines'], ['ocsf', 'OCSF']] };
const BADGE = { active: 'done', paused: 'pending', failing: 'failed', disabled: 'failed' };

function lag(s) {
  if (!s.lag_events) return 'caught up';
  const secs = s.lag_seconds < 10 ? s.lag_seconds.toFixed(1) : fmt(Math.round(s.lag_seconds));
  return `${fmt(s.lag_events)} event${s.lag_events === 1 ? '' : 's'} · ${secs} s`;
}

export async function openStreams() {
  const manage = state.me.permissions.manage;
  const err = h('p', { class: 'form-error', role: 'alert', id: 'streams-error' });
  const said = h('p', { class: 'muted', role: 'status', id: 'streams-status' });
  const body = h('tbody', { id: 'stream-rows' });
  const fail = (e) => { err.textContent = e.field ? `${e.field}: ${e.message}.` : e.message; };
  const act = (label, cls, fn) => h('button', { class: `link ${cls}`, onclick: async () => {
    err.textContent = '';
    try { await fn(); await refresh(); } catch (e) { fail(e); }
  } }, label);

  const refresh = async () => {
    const list = (await api('/streams')).streams;
    body.replaceChildren(...(list.length ? list.map((s) => h('tr', { 'data-id': s.id, 'data-status': s.status },
      h('td', {}, s.name, s.query ? h('div', { class: 'mono muted' }, s.query) : ''),
      h('td', {}, `${s.kind} · ${s.format}${s.tls ? ' · TLS' : ''}`, h('div', { class: 'mono muted small' }, s.url || s.address)),
      h('td', {}, h('span', { class: `badge badge-${BADGE[s.status] || 'pending'}` }, s.status),
        s.last_error ? h('div', { class: 'muted small' }, s.last_error) : ''),
      h('td', { class: 'num' }, s.last_seq === null ? '—' : String(s.last_seq)),
      h('td', { class: 'lag' }, lag(s)),
      h('td', { class: 'num' }, `${fmt(s.sent)} / ${fmt(s.failed)}`, s.last_sent_at ? h('div', { class: 'muted small' }, localTime(s.last_sent_at)) : ''),
      h('td', {}, manage ? [
        s.status === 'paused' || s.status === 'disabled'
          ? act('Resume', 'resume', () => api(`/streams/${s.id}/resume`, { method: 'POST' }).then(() => { said.textContent = `“${s.name}” resumed.`; }))
          : act('Pause', 'pause', () => api(`/streams/${s.id}/pause`, { method: 'POST' }).then(() => { said.textContent = `“${s.name}” paused.`; })),
        ' ',
        act('Replay all', 'replay', () => api(`/streams/${s.id}/replay`, { method: 'POST', body: { from: 'beginning' } }).then(() => { said.textContent = `“${s.name}” sends everything again.`; })),
        ' ',
        act('Delete', 'delete', async () => {
          if (!window.confirm(`Delete the stream “${s.name}”?`)) return;
          await api(`/streams/${s.id}`, { method: 'DELETE' });
          said.textContent = `“${s.name}” deleted.`;
        }),
      ] : '')))
      : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No streams yet.'))]));
  };

  const name = h('input', { id: 'stream-name', required: true });
  const kind = h('select', { id: 'stream-kind' }, h('option', { value: 'http' }, 'HTTP(S)'), h('option', { value: 'syslog' }, 'Syslog (RFC 5424)'));
  const format = h('select', { id: 'stream-format' });
  const target = h('input', { id: 'stream-target', placeholder: 'https://siem.example.com/ingest' });
  const tls = h('input', { type: 'checkbox', id: 'stream-tls' });
  const tlsLabel = h('label', { hidden: true }, tls, ' over TLS');
  const query = h('input', { id: 'stream-query', placeholder: 'optional, e.g. category:auth' });
  const start = h('select', { id: 'stream-start' }, h('option', { value: 'now' }, 'From now'), h('option', { value: 'beginning' }, 'From the beginning'));
  const formats = () => {
    format.replaceChildren(...FORMATS[kind.value].map(([v, l]) => h('option', { value: v }, l)));
    target.placeholder = kind.value === 'http' ? 'https://siem.example.com/ingest' : 'siem.example.com:6514';
    tlsLabel.hidden = kind.value !== 'syslog';
  };
  kind.addEventListener('change', formats);
  formats();
  const secret = h('p', { class: 'secret', id: 'stream-secret', hidden: true });
  const form = manage ? h('form', { class: 'sched-form', onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    secret.hidden = true;
    const b = { name: name.value.trim(), kind: kind.value, format: format.value, start: start.value };
    if (kind.value === 'http') b.url = target.value.trim();
    else { b.address = target.value.trim(); b.tls = tls.checked; }
    if (query.value.trim()) b.query = query.value.trim();
    try {
      const made = await api('/streams', { method: 'POST', body: b });
      name.value = '';
      target.value = '';
      if (made.secret) {
        secret.replaceChildren('Signing secret (shown only now): ', h('code', {}, made.secret));
        secret.hidden = false;
      }
      said.textContent = `Stream “${b.name}” made.`;
      await refresh();
    } catch (e) { fail(e); }
  } },
  h('h3', {}, 'New stream'),
  h('label', {}, 'Name ', name), h('label', {}, 'Kind ', kind), h('label', {}, 'Format ', format),
  h('label', {}, 'URL or host:port ', target), tlsLabel, h('label', {}, 'Only events matching ', query),
  h('label', {}, 'Start ', start),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', id: 'stream-create' }, 'Make stream'))) : null;

  const table = h('div', { class: 'sched-table', tabindex: 0 }, h('table', { class: 'diff' },
    h('thead', {}, h('tr', {}, ...['Stream', 'Where', 'Status', 'Last seq', 'Lag', 'Sent / failed', 'Action'].map((t) => h('th', {}, t)))), body));
  const dialog = h('dialog', { class: 'download-dialog schedules-dialog streams-dialog', id: 'streams-dialog', 'aria-labelledby': 'streams-title' },
    h('h2', { id: 'streams-title' }, 'Streams'),
    h('p', {}, 'Every event of the organization (or those matching a query) is sent to each stream at least once and in order, with the signed checkpoint that proves the copy complete.'),
    table, said, err, secret, form,
    h('div', { class: 'buttons' }, h('button', { type: 'button', class: 'secondary', id: 'streams-close', onclick: () => dialog.close() }, 'Close')));
  // Health changes as events flow: refreshed while the dialog is open.
  const timer = setInterval(() => { refresh().catch(() => {}); }, 2000);
  dialog.addEventListener('close', () => { clearInterval(timer); dialog.remove(); });
  document.body.append(dialog);
  dialog.showModal();
  try { await refresh(); } catch (e) { fail(e); }
}
