// The live view of the audit page: new events streamed in on top, paused and resumed.

import { API, fmt, markSelected, queryParams, reloadList, row, state } from './app.js';

// ---------- live view ----------

export function toggleLive() {
  state.live.on = !state.live.on;
  state.live.paused = false;
  state.live.held = [];
  const btn = document.getElementById('live');
  btn.setAttribute('aria-pressed', String(state.live.on));
  document.getElementById('pause').hidden = !state.live.on;
  document.getElementById('pause').textContent = 'Pause';
  updateHeld();
  if (state.live.on) startLive(); else stopLive();
}

export function startLive() {
  stopLive();
  const p = queryParams();
  p.delete('sort');
  const es = new EventSource(`${API}/events/stream?${p}`);
  es.addEventListener('event', (msg) => {
    const e = JSON.parse(msg.data);
    if (state.live.paused) { state.live.held.push(e); updateHeld(); return; }
    prepend([e]);
  });
  es.addEventListener('lagged', () => reloadList());
  // Marked while connected, so that a person (and a test) can tell the stream is on.
  es.onopen = () => { document.getElementById('live').dataset.connected = 'true'; };
  es.onerror = () => { delete document.getElementById('live').dataset.connected; /* it reconnects by itself */ };
  state.live.source = es;
}

export function stopLive() {
  if (state.live.source) state.live.source.close();
  state.live.source = null;
  const btn = document.getElementById('live');
  if (btn) delete btn.dataset.connected;
}

export function togglePause() {
  state.live.paused = !state.live.paused;
  document.getElementById('pause').textContent = state.live.paused ? 'Resume' : 'Pause';
  if (!state.live.paused && state.live.held.length) {
    prepend(state.live.held);
    state.live.held = [];
  }
  updateHeld();
}

export function updateHeld() {
  const el = document.getElementById('held');
  if (!el) return;
  const n = state.live.held.length;
  el.hidden = !state.live.paused;
  el.textContent = `${fmt(n)} new while paused`;
}

// New events go on top without moving what the user is looking at.
export function prepend(events) {
  const sort = state.params.get('sort');
  if (sort && sort !== '-timestamp') return;
  const known = new Set(state.events.map((e) => e.id));
  // Newest first, as the list is: by time, then by position in the log.
  const fresh = events.filter((e) => !known.has(e.id))
    .sort((a, b) => (a.timestamp === b.timestamp ? b.seq - a.seq : (a.timestamp < b.timestamp ? 1 : -1)));
  if (!fresh.length) return;
  const wrap = document.querySelector('.table-wrap');
  const before = wrap ? wrap.scrollHeight : 0;
  const top = wrap ? wrap.scrollTop : 0;
  state.events = fresh.concat(state.events);
  const tbody = document.querySelector('tbody');
  if (tbody.querySelector('td.state')) tbody.replaceChildren();
  const rows = fresh.map(row);
  for (const r of rows) r.classList.add('arrived');
  tbody.prepend(...rows);
  if (wrap && top > 0) wrap.scrollTop = top + (wrap.scrollHeight - before);
  const line = document.querySelector('.status-line');
  const n = state.events.length;
  line.textContent = `${fmt(n)}${state.cursor ? '+' : ''} events shown`;
  const told = document.getElementById('announce');
  if (told) told.textContent = `${fresh.length} new event${fresh.length === 1 ? '' : 's'}: ${fresh[0].action}`;
  markSelected();
}
