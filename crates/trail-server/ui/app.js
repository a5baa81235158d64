// Trail's audit log page. One module, no dependencies: it talks to /api/v1 with the
// session cookie (and the CSRF token on state-changing requests), keeps every filter,
// the sort, the search and the selected event in the URL, and renders with plain DOM.

const API = '/api/v1';
const PAGE = 50;
const PERIODS = [
  ['', 'All time'], ['today', 'Today'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'],
  ['month', 'This month'], ['30d', 'Last 30 days'], ['90d', 'Last 90 days'],
];
const RESULTS = ['DONE', 'FAILED', 'PROCESSING', 'PENDING'];
// Text filters of the panel: URL/API key, label, who sees it.
const TEXT_FILTERS = [
  ['actor', 'User', 'name, email or id; "ann@" for a prefix'],
  ['operation', 'Operation', 'e.g. login, delete, deploy'],
  ['resource_type', 'Resource type', 'e.g. secret, service, user'],
  ['company', 'Company', 'organization', 'platform'],
  ['request_id', 'Request ID', 'exact'],
  ['resource', 'Resource', 'name or id'],
  ['workspace', 'Workspace', 'name or id'],
  ['cluster', 'Cluster', ''],
  ['namespace', 'Namespace', ''],
];
// The list's columns: title, sort key.
const COLUMNS = [
  ['Date/Time (local)', 'timestamp'], ['Source IP', 'source_ip'], ['Performer', 'performer'], ['Company', 'company'],
  ['Email', 'email'], ['Type', 'type'], ['Operation', 'operation'], ['Result', 'result'],
];
const FILTER_KEYS = ['period', 'from', 'to', 'category', 'result', 'status', 'actor', 'operation', 'resource_type', 'company', 'request_id',
  'resource', 'workspace', 'cluster', 'namespace', 'q', 'views', 'sort'];

const state = {
  me: null,
  csrf: null,
  params: new URLSearchParams(),
  events: [],
  cursor: null,
  loading: false,
  error: null,
  selected: null,
  facets: null,
  live: { on: false, paused: false, held: [], source: null },
  requestSeq: 0,
};

// ---------- small helpers ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, opts = {}) {
  busy(1);
  try {
    return await request(path, opts);
  } finally {
    busy(-1);
  }
}

async function request(path, opts) {
  const headers = { ...(opts.headers || {}) };
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.method && opts.method !== 'GET' && state.csrf) headers['x-csrf-token'] = state.csrf;
  const resp = await fetch(API + path, {
    method: opts.method || 'GET',
    signal: opts.signal,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    credentials: 'same-origin',
  });
  if (opts.raw) return resp;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: { message: text } }; }
  if (!resp.ok) {
    const err = new Error((data && data.error && data.error.message) || resp.statusText);
    err.status = resp.status;
    err.field = data && data.error && data.error.field;
    err.code = data && data.error && data.error.code;
    throw err;
  }
  return data;
}

const pad = (n) => String(n).padStart(2, '0');
function localTime(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
const utcTitle = (iso) => `UTC: ${iso.replace('T', ' ').replace('Z', '')}`;
const badge = (r) => h('span', { class: `badge badge-${(r || '').toLowerCase()}` }, r);
const fmt = (n) => Number(n).toLocaleString('en-US');

// Work under way (requests, and typing not yet applied): the page marks itself idle
// when there is none, so that a person's tools (and the browser test) can tell.
let pending = 0;
function busy(delta) {
  pending += delta;
  document.documentElement.dataset.pending = String(pending);
}

function debounce(fn, ms, track = false) {
  let t = null;
  return (...a) => {
    if (t !== null) clearTimeout(t);
    else if (track) busy(1);
    t = setTimeout(() => { t = null; if (track) busy(-1); fn(...a); }, ms);
  };
}

// ---------- URL state ----------

function readUrl() {
  state.params = new URLSearchParams(location.search);
}

function filterParams() {
  const p = new URLSearchParams();
  for (const k of FILTER_KEYS) {
    const v = state.params.get(k);
    if (v) p.set(k, v);
  }
  return p;
}

// What is asked of the API: the URL's filters, and Trail's own audit:view events left
// out unless "Show audit-log views" is on (`views=show` in the URL).
function queryParams() {
  const p = filterParams();
  if (p.get('views') === 'show') p.delete('views');
  else p.set('views', 'hide');
  return p;
}

// The text field whose typing made the current history entry: further typing in it
// replaces that entry, so that a word typed is one step back, not one per pause.
let typingKey = null;

function pushUrl(replace = false) {
  const p = filterParams();
  if (state.params.get('event')) p.set('event', state.params.get('event'));
  const url = `/audit${p.toString() ? '?' + p : ''}`;
  if (url !== location.pathname + location.search) {
    history[replace ? 'replaceState' : 'pushState'](null, '', url);
  }
}

function setParam(key, value, { reload = true, typing = false } = {}) {
  if (value === '' || value === null || value === undefined || (Array.isArray(value) && !value.length)) {
    state.params.delete(key);
  } else {
    state.params.set(key, Array.isArray(value) ? value.join(',') : value);
  }
  if (['period', 'from', 'to'].includes(key)) state.facets = null;
  pushUrl(typing && typingKey === key);
  typingKey = typing ? key : null;
  if (reload) reloadList();
}

// A text field that filters as the user types: one history entry per field visit.
function typedField(input, key) {
  input.addEventListener('input', debounce(() => setParam(key, input.value.trim(), { typing: true }), 300, true));
  input.addEventListener('blur', () => { if (typingKey === key) typingKey = null; });
}

const listOf = (key) => (state.params.get(key) || '').split(',').filter(Boolean);

// ---------- boot: who is this? ----------

async function boot() {
  readUrl();
  try {
    state.me = await api('/auth/me');
    state.csrf = state.me.csrf_token;
  } catch (e) {
    return renderFatal(e);
  }
  if (!state.me.authenticated) return renderLogin();
  if (state.me.must_change_password) return renderChangePassword();
  if (!state.me.permissions.view) return renderNoPermission();
  renderMain();
}

window.addEventListener('popstate', () => {
  if (!state.me || !document.querySelector('.layout')) return;
  readUrl();
  state.facets = null;
  renderMain();
});

// ---------- login, password, no permission ----------

function card(title, ...body) {
  const app = document.getElementById('app');
  app.replaceChildren(h('main', { class: 'center' }, h('div', { class: 'card' },
    h('div', { class: 'brand brand-lg' }, h('img', { src: '/ui/icon.svg', alt: '' }), 'Trail'),
    h('h1', {}, title), ...body)));
}

function renderLogin(message) {
  const err = h('p', { class: 'form-error', role: 'alert' }, message || '');
  const email = h('input', { type: 'email', id: 'email', name: 'email', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { type: 'password', id: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', {
    class: 'form', onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      try {
        const r = await api('/auth/login', { method: 'POST', body: { email: email.value, password: password.value } });
        state.csrf = r.csrf_token;
        await boot();
      } catch (e) {
        err.textContent = e.status === 429 ? e.message : 'Wrong email or password.';
        password.value = '';
        password.focus();
      }
    },
  },
  h('label', { for: 'email' }, 'Email'), email,
  h('label', { for: 'password' }, 'Password'), password,
  err,
  h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  card('Log in to the audit log', form);
}

function renderChangePassword() {
  const err = h('p', { class: 'form-error', role: 'alert' });
  const current = h('input', { type: 'password', id: 'current', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', id: 'new', autocomplete: 'new-password', required: true, minlength: 10 });
  const form = h('form', {
    class: 'form', onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        await api('/auth/password', { method: 'POST', body: { current_password: current.value, new_password: next.value } });
        await boot();
      } catch (e) {
        const label = { current_password: 'Current password', new_password: 'New password' }[e.field];
        err.textContent = label ? `${label} ${e.message}.` : e.message;
      }
    },
  },
  h('p', { class: 'muted' }, 'Your password was set by someone else. Choose your own (at least 10 characters) to continue.'),
  h('label', { for: 'current' }, 'Current (one-time) password'), current,
  h('label', { for: 'new' }, 'New password'), next, err,
  h('button', { type: 'submit', class: 'primary' }, 'Change password'));
  card('Change your password', form);
}

function renderNoPermission() {
  card('You cannot access this page',
    h('p', {}, 'Viewing the audit log is a restricted permission. Please request permission from your organization manager.'),
    h('p', { class: 'muted' }, `Signed in as ${state.me.user ? state.me.user.email : state.me.actor.name} (${state.me.org}).`),
    h('button', { class: 'secondary', onclick: logout }, 'Log out'));
}

function renderFatal(e) {
  card('Something went wrong', h('p', { role: 'alert' }, e.message), h('button', { class: 'secondary', onclick: () => location.reload() }, 'Retry'));
}

async function logout() {
  try { await api('/auth/logout', { method: 'POST' }); } catch { /* already out */ }
  stopLive();
  state.me = null;
  renderLogin();
}

// ---------- the main view ----------

function renderMain() {
  const me = state.me;
  const who = me.user ? me.user.email : me.actor.name;
  const app = document.getElementById('app');
  app.replaceChildren(
    h('a', { class: 'skip', href: '#events', onclick: (ev) => { ev.preventDefault(); focusList(); } }, 'Skip to the events'),
    h('header', { class: 'topbar' },
      h('div', { class: 'brand' }, h('img', { src: '/ui/icon.svg', alt: '' }), 'Trail'),
      h('h1', { class: 'page-title' }, 'Audit Log'),
      h('span', { class: 'org' }, me.permissions.platform ? 'All organizations' : me.org),
      h('span', { class: 'spacer' }),
      h('span', { class: 'who', title: me.user ? `role: ${me.user.role}` : '' }, who),
      me.csrf_token ? h('button', { class: 'link', id: 'logout', onclick: logout }, 'Log out') : null),
    h('main', { class: 'layout' },
      h('aside', { class: 'filters', id: 'filters', 'aria-label': 'Filters' }),
      h('section', { class: 'list', id: 'events', 'aria-label': 'Events' },
        toolbar(),
        h('div', { class: 'status-line', role: 'status' }),
        h('div', { class: 'table-wrap' }, h('table', { class: 'events' }, tableHead(), h('tbody', {}))),
        h('div', { class: 'more' })),
      h('section', { class: 'detail', 'aria-label': 'Event detail', hidden: true })),
    // Arrivals of the live view, told to screen readers without interrupting them.
    h('div', { class: 'visually-hidden', id: 'announce', role: 'status', 'aria-live': 'polite' }),
  );
  renderFilters();
  // The counts of the filter panel come after the first page (reloadList asks for
  // them), so that the rows show first.
  reloadList();
  const sel = state.params.get('event');
  if (sel) openDetail(sel, { push: false, focus: false });
}

function toolbar() {
  const q = h('input', {
    type: 'search', class: 'search', id: 'search', value: state.params.get('q') || '',
    placeholder: 'Search, or filter: category:auth result:FAILED actor:ann@ created:>=2024-03-01 "vpc-prod"',
    'aria-label': 'Search the audit log', 'aria-describedby': 'search-hint',
  });
  typedField(q, 'q');
  // Keys typed in the query (period:, sort:) light their chip and column at once.
  q.addEventListener('input', debounce(() => {
    const period = state.params.get('period') || typedTerm('period') || '';
    const custom = state.params.get('from') || state.params.get('to');
    for (const b of document.querySelectorAll('.preset')) {
      const on = !custom && b.dataset.period === period;
      b.classList.toggle('on', on);
      b.setAttribute('aria-checked', String(on));
    }
    const head = document.querySelector('thead');
    if (head) head.replaceWith(tableHead());
  }, 320));
  const liveBtn = h('button', { class: 'toggle', id: 'live', 'aria-pressed': String(state.live.on), onclick: toggleLive }, h('span', { class: 'dot' }), 'Live');
  const pauseBtn = h('button', { class: 'secondary', id: 'pause', hidden: !state.live.on, onclick: togglePause }, state.live.paused ? 'Resume' : 'Pause');
  const held = h('span', { class: 'held', id: 'held', hidden: true });
  // On a narrow screen the filters are a drawer, opened from here.
  const filtersBtn = h('button', {
    class: 'secondary', id: 'filters-toggle', 'aria-controls': 'filters', 'aria-expanded': 'false',
    onclick: () => openFilters(true),
  }, 'Filters');
  return h('div', { class: 'toolbar' },
    filtersBtn,
    h('div', { class: 'search-box' }, q,
      h('div', { class: 'hint', id: 'search-hint' }, 'Words search everything; ', h('code', {}, 'key:value'), ' filters (category, result, actor, company, request_id, resource, workspace, cluster, namespace, ip, status, created:>=DATE), ', h('code', {}, '"a phrase"'), '.')),
    h('div', { class: 'actions' }, liveBtn, pauseBtn, held, downloadButton(), exportMenu(),
      state.me.permissions.manage ? h('button', { class: 'secondary', id: 'schedules', onclick: openSchedules }, 'Schedules') : null));
}

// "Download log": any period as one CSV or JSON Lines file, archived and online events
// merged in time order (online queries reach only the recent window).
function downloadButton() {
  const can = state.me.permissions.export;
  const today = new Date().toISOString().slice(0, 10);
  const from = h('input', { type: 'date', id: 'dl-from', required: true });
  const to = h('input', { type: 'date', id: 'dl-to', value: today, required: true });
  const format = h('select', { id: 'dl-format' }, h('option', { value: 'csv' }, 'CSV'), h('option', { value: 'jsonl' }, 'JSON Lines'));
  const dialog = h('dialog', { class: 'download-dialog', id: 'download-dialog', 'aria-labelledby': 'dl-title' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'dl-title' }, 'Download log'),
      h('p', {}, 'Any period, including logs archived after the online query window. Large periods are prepared in the background.'),
      h('label', {}, 'From ', from), h('label', {}, 'To ', to), h('label', {}, 'Format ', format),
      h('p', { class: 'note' }, 'The file contains personal data (names, emails, IP addresses).'),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel'),
        h('button', { type: 'submit', id: 'dl-go', value: 'go' }, 'Download file'))));
  dialog.addEventListener('close', () => {
    if (dialog.returnValue !== 'go' || !from.value || !to.value) return;
    dialog.returnValue = '';
    const p = new URLSearchParams({ from: from.value, to: to.value, format: format.value, download: '1' });
    fetchFile(p, format.value === 'csv' ? 'CSV download' : 'JSON Lines download');
  });
  openDownload = (start, end) => {
    if (start) from.value = start.slice(0, 10);
    if (end) to.value = end.slice(0, 10);
    document.body.append(dialog);
    dialog.showModal();
  };
  const btn = h('button', {
    class: 'secondary', id: 'download', disabled: !can,
    title: can ? 'Download any period, archived logs included' : 'Your role may not export',
    onclick: () => openDownload(),
  }, 'Download log');
  return btn;
}

// Opens the "Download log" dialog, optionally for a period (set by downloadButton).
let openDownload = () => {};

function exportMenu() {
  const can = state.me.permissions.export;
  const menu = h('div', { class: 'menu', role: 'menu', hidden: true },
    ...[['csv', 'CSV'], ['xlsx', 'Excel (XLSX)'], ['json', 'JSON'], ['pdf', 'PDF report']].map(([f, label]) =>
      h('button', { role: 'menuitem', 'data-format': f, onclick: () => { menu.hidden = true; btn.setAttribute('aria-expanded', 'false'); doExport(f); } }, label)),
    h('p', { class: 'note' }, 'Exports contain personal data (names, emails, IP addresses). Handle them according to your data protection policy.'));
  const items = () => [...menu.querySelectorAll('[role=menuitem]')];
  const show = (open) => {
    menu.hidden = !open;
    btn.setAttribute('aria-expanded', String(open));
    if (open) items()[0].focus();
  };
  const btn = h('button', {
    class: 'secondary', id: 'export', 'aria-haspopup': 'menu', 'aria-expanded': 'false', disabled: !can,
    title: can ? 'Export exactly what the filters select' : 'Your role may not export',
    onclick: () => show(menu.hidden),
  }, 'Export ▾');
  // The menu by keyboard: arrows move between formats, Esc closes it and returns to the button.
  menu.addEventListener('keydown', (e) => {
    const list = items();
    const at = list.indexOf(document.activeElement);
    const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: list.length - 1 }[e.key];
    if (to !== undefined) { e.preventDefault(); list[(to + list.length) % list.length].focus(); }
    else if (e.key === 'Escape') { e.stopPropagation(); show(false); btn.focus(); }
  });
  document.addEventListener('click', (e) => { if (!menu.hidden && !menu.contains(e.target) && e.target !== btn) show(false); });
  return h('div', { class: 'export' }, btn, menu);
}

async function doExport(format) {
  const p = queryParams();
  p.delete('sort');
  if (state.params.get('sort')) p.set('sort', state.params.get('sort'));
  p.set('format', format);
  return fetchFile(p, `${format.toUpperCase()} export`);
}

// Makes an export or download as a job on the server, shows its progress, then hands
// the finished file to the browser's own download (streamed to disk with the browser's
// progress; the page never holds the file in memory).
async function fetchFile(params, what) {
  const line = document.querySelector('.status-line');
  line.textContent = `Preparing the ${what}…`;
  try {
    let job = await api(`/exports?${params}`, { method: 'POST' });
    while (job.status === 'running') {
      line.textContent = `Exporting… ${Math.round((job.progress || 0) * 100)}% (${fmt(job.rows_done)} of ${fmt(job.rows_total)} events)`;
      await new Promise((r) => setTimeout(r, 500));
      job = await api(`/exports/${job.id}`);
    }
    if (job.status !== 'done') throw new Error((job.error && job.error.message) || 'the export failed');
    const a = h('a', { href: `${API}/exports/${job.id}/file`, download: job.file_name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    line.textContent = `Exported ${job.file_name} (${fmt(job.rows)} event${job.rows === 1 ? '' : 's'}).`;
  } catch (e) {
    line.textContent = `The ${what} failed: ${e.message}`;
  }
}

// A key typed in the search box (`period:7d`, `sort:email`), so that the chips and the
// header show what the query does.
function typedTerm(key) {
  const m = (state.params.get('q') || '').match(new RegExp(`(?:^|\\s)${key}:(\\S+)`));
  return m ? m[1] : null;
}

// ---------- scheduled exports (organization administrators) ----------

const WEEKDAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

// The current filters in the query language, without the period: each run of a
// schedule covers the day (or week) before it.
function filtersAsQuery() {
  const p = filterParams();
  const terms = [];
  for (const [k, v] of p) {
    if (['period', 'from', 'to', 'sort'].includes(k)) continue;
    if (k === 'q') { terms.push(v); continue; }
    for (const one of v.split(',')) terms.push(`${k}:${/[\s"]/.test(one) ? JSON.stringify(one) : one}`);
  }
  return terms.join(' ');
}

async function openSchedules() {
  const err = h('p', { class: 'form-error', role: 'alert', id: 'sched-error' });
  const said = h('p', { class: 'muted', role: 'status', id: 'sched-status' });
  const list = h('tbody', {});
  const name = h('input', { id: 'sched-name', required: true });
  const cadence = h('select', { id: 'sched-cadence' }, h('option', { value: 'daily' }, 'Daily'), h('option', { value: 'weekly' }, 'Weekly'));
  const weekday = h('select', { id: 'sched-weekday', disabled: true }, ...WEEKDAYS.map((d) => h('option', { value: d }, d[0].toUpperCase() + d.slice(1))));
  cadence.addEventListener('change', () => { weekday.disabled = cadence.value !== 'weekly'; });
  const at = h('input', { type: 'time', id: 'sched-at', value: '06:00', required: true });
  const format = h('select', { id: 'sched-format' }, ...[['csv', 'CSV'], ['xlsx', 'Excel (XLSX)'], ['json', 'JSON'], ['jsonl', 'JSON Lines'], ['pdf', 'PDF report']].map(([v, l]) => h('option', { value: v }, l)));
  const query = h('input', { id: 'sched-query', value: filtersAsQuery() });
  const recipients = h('input', { id: 'sched-recipients', placeholder: 'a@example.com, b@example.com' });
  const directory = h('input', { id: 'sched-directory', placeholder: 'optional: keep files under this folder' });
  const labels = { name: 'Name', cadence: 'Cadence', weekday: 'Weekday', at: 'Time', format: 'Format', query: 'Filters', recipients: 'Recipients', directory: 'Folder' };
  const fail = (e) => { err.textContent = e.field && labels[e.field] ? `${labels[e.field]}: ${e.message}.` : e.message; };
  const refresh = async () => {
    const r = await api('/schedules');
    list.replaceChildren(...(r.schedules.length ? r.schedules.map((s) => h('tr', { 'data-id': s.id },
      h('td', {}, s.name), h('td', {}, `${s.cadence}${s.weekday ? ' ' + s.weekday : ''} ${s.at} UTC`),
      h('td', {}, s.format), h('td', { class: 'mono' }, s.query || '—'),
      h('td', {}, s.recipients.join(', ') || (s.directory ? `folder ${s.directory}` : '—')),
      h('td', {},
        h('button', { class: 'link run', onclick: async () => {
          err.textContent = '';
          try {
            const out = await api(`/schedules/${s.id}/run`, { method: 'POST' });
            said.textContent = `“${s.name}” ran: ${fmt(out.rows)} events${out.emailed ? `, mailed to ${out.emailed}` : ''}${out.mail_error ? ` (not mailed: ${out.mail_error})` : ''}.`;
          } catch (e) { fail(e); }
        } }, 'Run now'), ' ',
        h('button', { class: 'link delete', onclick: async () => {
          try { await api(`/schedules/${s.id}`, { method: 'DELETE' }); await refresh(); said.textContent = `“${s.name}” deleted.`; } catch (e) { fail(e); }
        } }, 'Delete'))))
      : [h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No scheduled exports yet.'))]));
  };
  const form = h('form', { class: 'sched-form', onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const body = { name: name.value.trim(), cadence: cadence.value, at: at.value, format: format.value, query: query.value.trim(),
      recipients: recipients.value.split(',').map((x) => x.trim()).filter(Boolean) };
    if (cadence.value === 'weekly') body.weekday = weekday.value;
    if (directory.value.trim()) body.directory = directory.value.trim();
    try {
      const s = await api('/schedules', { method: 'POST', body });
      name.value = '';
      await refresh();
      said.textContent = `“${s.name}” scheduled; next run ${localTime(s.next_run)}.`;
    } catch (e) { fail(e); }
  } },
  h('h3', {}, 'New scheduled export'),
  h('label', {}, 'Name ', name), h('label', {}, 'Cadence ', cadence), h('label', {}, 'Weekday ', weekday),
  h('label', {}, 'Time (UTC) ', at), h('label', {}, 'Format ', format), h('label', {}, 'Filters ', query),
  h('label', {}, 'Recipients ', recipients), h('label', {}, 'Folder ', directory),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', id: 'sched-create' }, 'Create')));
  const dialog = h('dialog', { class: 'download-dialog schedules-dialog', id: 'schedules-dialog', 'aria-labelledby': 'sched-title' },
    h('h2', { id: 'sched-title' }, 'Scheduled exports'),
    h('p', {}, 'Files of the chosen filters, made every day or week and mailed or kept on the server. Exports contain personal data.'),
    h('div', { class: 'sched-table' }, h('table', { class: 'diff' }, h('thead', {}, h('tr', {}, ...['Name', 'When', 'Format', 'Filters', 'To', ''].map((t) => h('th', {}, t)))), list)),
    said, err, form,
    h('div', { class: 'buttons' }, h('button', { type: 'button', class: 'secondary', id: 'sched-close', onclick: () => dialog.close() }, 'Close')));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  try { await refresh(); } catch (e) { fail(e); }
}

function tableHead() {
  const sort = state.params.get('sort') || typedTerm('sort') || '-timestamp';
  const desc = sort.startsWith('-');
  const key = sort.replace(/^-/, '');
  return h('thead', {}, h('tr', {}, ...COLUMNS.map(([title, k]) => {
    const active = k === key;
    const next = active ? (desc ? k : `-${k}`) : (k === 'timestamp' ? '-timestamp' : k);
    return h('th', { scope: 'col', 'aria-sort': active ? (desc ? 'descending' : 'ascending') : 'none' },
      h('button', {
        class: 'sort', 'data-sort': k,
        onclick: () => {
          setParam('sort', next === '-timestamp' ? '' : next);
          document.querySelector('thead').replaceWith(tableHead());
          // The header was made anew: focus stays on the column's button.
          document.querySelector(`th button[data-sort="${k}"]`).focus();
        },
      },
        title, h('span', { class: 'arrow' }, active ? (desc ? '▼' : '▲') : '')));
  })));
}

// ---------- filters ----------

function renderFilters() {
  const aside = document.querySelector('.filters');
  if (!aside) return;
  const platform = state.me.permissions.platform;
  const period = state.params.get('period') || typedTerm('period') || '';
  const custom = state.params.get('from') || state.params.get('to');
  const from = h('input', { type: 'date', id: 'from', value: (state.params.get('from') || '').slice(0, 10) });
  const to = h('input', { type: 'date', id: 'to', value: (state.params.get('to') || '').slice(0, 10) });
  const rangeError = h('p', { class: 'range-error', id: 'range-error', role: 'alert', hidden: true });
  const applyRange = () => {
    // An end before the start selects nothing: say so rather than show an empty list.
    if (from.value && to.value && from.value > to.value) {
      rangeError.textContent = '“From” is after “To”: choose a start before the end.';
      rangeError.hidden = false;
      return;
    }
    rangeError.hidden = true;
    state.params.delete('period');
    setParam('from', from.value, { reload: false });
    setParam('to', to.value);
    renderFilters();
  };
  from.addEventListener('change', applyRange);
  to.addEventListener('change', applyRange);
  const chosenResults = listOf('result');
  const textInputs = TEXT_FILTERS.filter(([, , , who]) => who !== 'platform' || platform).map(([key, label, hint]) => {
    const input = h('input', {
      type: 'text', id: `f-${key}`, value: state.params.get(key) || '', placeholder: hint, autocomplete: 'off',
      // The user field suggests the actors of the period, from the counts.
      list: key === 'actor' ? 'actors' : undefined,
    });
    typedField(input, key);
    return h('div', { class: 'field' }, h('label', { for: `f-${key}` }, label), input);
  });
  const status = h('select', { id: 'f-status' },
    h('option', { value: '' }, 'Any'), h('option', { value: 'success' }, 'Success (2xx)'), h('option', { value: 'failure' }, 'Failure (4xx/5xx)'));
  status.value = state.params.get('status') || '';
  status.addEventListener('change', () => setParam('status', status.value));
  const views = h('input', { type: 'checkbox', id: 'f-views', checked: state.params.get('views') === 'show' });
  views.addEventListener('change', () => setParam('views', views.checked ? 'show' : ''));
  aside.replaceChildren(
    h('div', { class: 'filters-head' }, h('h2', {}, 'Filters'),
      h('button', { class: 'link close', id: 'filters-close', 'aria-label': 'Close filters', onclick: () => openFilters(false) }, '✕'),
      h('button', { class: 'link', id: 'clear', onclick: () => { for (const k of FILTER_KEYS) if (k !== 'sort') state.params.delete(k); state.facets = null; pushUrl(); renderFilters(); const s = document.getElementById('search'); if (s) s.value = ''; reloadList(); } }, 'Clear all')),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Period'),
      h('div', { class: 'presets', role: 'radiogroup' }, ...PERIODS.map(([v, label]) => [v, v === '' && state.me.online_days ? 'All online' : label]).map(([v, label]) =>
        h('button', {
          title: v === '' && state.me.online_days ? `Everything queryable online: the last ${state.me.online_days} days (older logs: Download log)` : undefined,
          class: `preset${!custom && v === period ? ' on' : ''}`, role: 'radio', 'aria-checked': String(!custom && v === period), 'data-period': v,
          onclick: () => { state.params.delete('from'); state.params.delete('to'); setParam('period', v); renderFilters(); },
        }, label))),
      h('div', { class: 'range' }, h('label', { for: 'from' }, 'From'), from, h('label', { for: 'to' }, 'To'), to, rangeError)),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Type'),
      h('div', { class: 'checks', id: 'f-category' })),
    h('fieldset', { class: 'group' }, h('legend', {}, 'Result'),
      h('div', { class: 'checks', id: 'f-result' }, RESULTS.map((r) => check('result', r, badge(r), chosenResults)))),
    h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), status),
    h('label', { class: 'check views' }, views, h('span', { class: 'check-label' }, 'Show audit-log views')),
    ...textInputs,
    h('datalist', { id: 'actors' }),
  );
  renderCounts();
}

// The Type checks and their counts, redrawn alone when counts arrive: the rest of the
// panel (and whatever has focus in it) is left as it is. Counts are shown only for
// the period they were made for.
function renderCounts() {
  const box = document.getElementById('f-category');
  if (!box) return;
  const cats = state.facets ? state.facets.categories : [];
  const chosen = listOf('category');
  const names = [...new Set([...cats.map((c) => c.value), ...chosen])].sort();
  const counts = Object.fromEntries(cats.map((c) => [c.value, c.count]));
  const focused = box.contains(document.activeElement) ? document.activeElement.value : null;
  box.replaceChildren(...(names.length
    ? names.map((c) => check('category', c, c, chosen, counts[c]))
    : [h('p', { class: 'muted' }, state.facets ? 'No events in this period.' : 'Counting…')]));
  box.dataset.counted = state.facets ? 'true' : 'false';
  const actors = document.getElementById('actors');
  if (actors) {
    actors.replaceChildren(...(state.facets ? state.facets.users : []).map((u) =>
      h('option', { value: u.value, label: u.label ? `${u.label} (${fmt(u.count)})` : fmt(u.count) })));
  }
  if (focused !== null) {
    const again = box.querySelector(`input[value="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}

// The filter drawer of narrow screens.
function openFilters(open) {
  const layout = document.querySelector('.layout');
  layout.classList.toggle('filters-open', open);
  document.getElementById('filters-toggle').setAttribute('aria-expanded', String(open));
  (open ? document.querySelector('.filters button, .filters input') : document.getElementById('filters-toggle')).focus();
}

function check(key, value, label, chosen, count) {
  const box = h('input', { type: 'checkbox', value, checked: chosen.includes(value), 'data-key': key });
  box.addEventListener('change', () => {
    const now = listOf(key).filter((v) => v !== value);
    if (box.checked) now.push(value);
    setParam(key, now);
  });
  return h('label', { class: 'check' }, box, h('span', { class: 'check-label' }, label), count !== undefined ? h('span', { class: 'count' }, fmt(count)) : null);
}

// Counts of the newest period asked for: an older request is cancelled, and an answer
// that still comes late is dropped, so stale counts never replace newer ones.
let facetSeq = 0;
let facetAbort = null;

async function loadFacets() {
  const seq = ++facetSeq;
  if (facetAbort) facetAbort.abort();
  facetAbort = new AbortController();
  const p = new URLSearchParams();
  for (const k of ['period', 'from', 'to']) if (state.params.get(k)) p.set(k, state.params.get(k));
  try {
    const facets = await api(`/facets?${p}`, { signal: facetAbort.signal });
    if (seq !== facetSeq) return;
    state.facets = facets;
    renderCounts();
  } catch { /* cancelled, or the panel works without counts */ }
}

// ---------- the list ----------

async function reloadList() {
  state.events = [];
  state.cursor = null;
  state.live.held = [];
  updateHeld();
  await loadPage(true);
  if (state.live.on) startLive();
  // Counts for a period the list refused would be refused too.
  if (!state.error) loadFacetsSoon();
}

const loadFacetsSoon = debounce(loadFacets, 400, true);

async function loadPage(fresh) {
  const seq = ++state.requestSeq;
  state.loading = true;
  state.error = null;
  renderRows(fresh);
  const p = queryParams();
  p.set('limit', PAGE);
  if (!fresh && state.cursor) p.set('cursor', state.cursor);
  try {
    const page = await api(`/events?${p}`);
    if (seq !== state.requestSeq) return;
    state.events = fresh ? page.events : state.events.concat(page.events);
    state.cursor = page.next_cursor;
  } catch (e) {
    if (seq !== state.requestSeq) return;
    if (e.status === 401) return renderLogin('Your session has ended. Log in again.');
    state.error = e;
  }
  state.loading = false;
  renderRows(fresh);
}

function renderRows() {
  const tbody = document.querySelector('tbody');
  const line = document.querySelector('.status-line');
  const more = document.querySelector('.more');
  if (!tbody) return;
  if (state.error && state.error.code === 'beyond_online_window') {
    // Older than the online window: the download reaches that period.
    const go = h('button', { class: 'secondary', id: 'download-period', onclick: () => openDownload(state.params.get('from'), state.params.get('to')) }, 'Download log for this period');
    const days = state.me.online_days;
    const start = localTime(new Date(Date.now() - days * 86400e3).toISOString()).slice(0, 10);
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 8, class: 'state' },
      `Online queries reach back ${days} days (to ${start}). Older events are archived: `, go)));
    line.textContent = '';
    more.replaceChildren();
    return;
  }
  if (state.error) {
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 8, class: 'state error' }, `Could not load events: ${state.error.message}`,
      state.error.field ? ` (check “${state.error.field}”)` : '')));
    line.textContent = '';
    more.replaceChildren();
    return;
  }
  if (!state.events.length) {
    tbody.replaceChildren(h('tr', {}, h('td', { colspan: 8, class: 'state' }, state.loading ? 'Loading events…' : 'No events match these filters.')));
  } else {
    tbody.replaceChildren(...state.events.map(row));
  }
  const n = state.events.length;
  line.textContent = state.loading && n === 0 ? '' : `${fmt(n)}${state.cursor ? '+' : ''} event${n === 1 ? '' : 's'} shown`;
  more.replaceChildren(state.cursor ? h('button', { class: 'secondary', id: 'load-more', disabled: state.loading, onclick: () => loadPage(false) }, state.loading ? 'Loading…' : `Load ${PAGE} more`) : '');
  markSelected();
}

function row(e) {
  const a = e.actor || {};
  const res = e.resource || {};
  const [cat, ...op] = e.action.split(':');
  const tr = h('tr', {
    tabindex: -1, 'data-id': e.id,
    onclick: () => openDetail(e.id, { event: e }),
    onfocus: () => rove(tr),
    onkeydown: (ev) => {
      const to = { ArrowDown: tr.nextElementSibling, ArrowUp: tr.previousElementSibling,
        Home: tr.parentElement.firstElementChild, End: tr.parentElement.lastElementChild }[ev.key];
      if (ev.key === 'Enter') openDetail(e.id, { event: e });
      else if (to !== undefined) { ev.preventDefault(); if (to) to.focus(); }
    },
  },
  h('td', { class: 'time', title: utcTitle(e.timestamp) }, localTime(e.timestamp)),
  h('td', { class: 'mono' }, e.source_ip || '—'),
  h('td', {}, a.name || a.id || '—'),
  h('td', {}, e.org),
  h('td', {}, a.email || '—'),
  h('td', {}, h('span', { class: 'type' }, cat)),
  h('td', {}, h('div', {}, op.join(':')), res.name ? h('div', { class: 'resource', title: res.id ? `id: ${res.id}` : 'no id' }, res.name) : null),
  h('td', {}, badge(e.result)));
  return tr;
}

// The list is one Tab stop: the row last focused (or the selected one, or the first)
// takes Tab; the arrow keys, Home and End move between rows.
function rove(tr) {
  for (const r of document.querySelectorAll('tbody tr[data-id][tabindex="0"]')) if (r !== tr) r.tabIndex = -1;
  tr.tabIndex = 0;
}

function focusList() {
  const tr = document.querySelector('tbody tr[data-id][tabindex="0"]') || document.querySelector('tbody tr[data-id]');
  if (tr) tr.focus();
}

function markSelected() {
  const id = state.params.get('event');
  const rows = [...document.querySelectorAll('tbody tr[data-id]')];
  for (const tr of rows) {
    tr.classList.toggle('selected', tr.dataset.id === id);
    tr.setAttribute('aria-selected', String(tr.dataset.id === id));
  }
  if (rows.length && !rows.some((r) => r.tabIndex === 0)) rove(rows.find((r) => r.dataset.id === id) || rows[0]);
}

// ---------- detail ----------

async function openDetail(id, { push = true, focus = true } = {}) {
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

function closeDetail() {
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

document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape') return;
  const layout = document.querySelector('.layout');
  if (layout && layout.classList.contains('filters-open')) openFilters(false);
  else closeDetail();
});

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
  const proof = d.proof
    ? h('span', { class: 'proof ok' }, `✓ Included in the signed checkpoint of ${fmt(d.proof.size)} entries (entry ${fmt(d.proof.index)})`)
    : h('span', { class: 'proof pending' }, 'Not yet covered by a checkpoint (signed within about a second)');
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

// ---------- live view ----------

function toggleLive() {
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

function startLive() {
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

function stopLive() {
  if (state.live.source) state.live.source.close();
  state.live.source = null;
  const btn = document.getElementById('live');
  if (btn) delete btn.dataset.connected;
}

function togglePause() {
  state.live.paused = !state.live.paused;
  document.getElementById('pause').textContent = state.live.paused ? 'Resume' : 'Pause';
  if (!state.live.paused && state.live.held.length) {
    prepend(state.live.held);
    state.live.held = [];
  }
  updateHeld();
}

function updateHeld() {
  const el = document.getElementById('held');
  if (!el) return;
  const n = state.live.held.length;
  el.hidden = !state.live.paused;
  el.textContent = `${fmt(n)} new while paused`;
}

// New events go on top without moving what the user is looking at.
function prepend(events) {
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

boot();
