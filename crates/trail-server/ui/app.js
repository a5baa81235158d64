// Trail's audit log page, the entry module: state, helpers, the URL, login, the main
// view, the filters and the list. The detail (`detail.js`), exports and schedules
// (`exports.js`) and the live view (`live.js`) are modules of their own. No
// dependencies: it talks to /api/v1 with the session cookie (and the CSRF token on
// state-changing requests), keeps every filter, the sort, the search and the selected
// event in the URL, and renders with plain DOM.

import { openAlerts } from './alerts.js';
import { openStreams } from './streams.js';
import { openHolds } from './holds.js';
import { closeDetail, openDetail } from './detail.js';
import { downloadButton, exportMenu, openDownload, openSchedules } from './exports.js';
import { prepend, startLive, stopLive, toggleLive, togglePause, updateHeld } from './live.js';
import { loadTimeline } from './timeline.js';

export const API = '/api/v1';
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
export const FILTER_KEYS = ['period', 'from', 'to', 'category', 'result', 'status', 'actor', 'operation', 'resource_type', 'company', 'request_id',
  'resource', 'workspace', 'cluster', 'namespace', 'q', 'views', 'sort'];

export const state = {
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

export function h(tag, attrs = {}, ...children) {
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

export async function api(path, opts = {}) {
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
export function localTime(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
export const utcTitle = (iso) => `UTC: ${iso.replace('T', ' ').replace('Z', '')}`;
export const badge = (r) => h('span', { class: `badge badge-${(r || '').toLowerCase()}` }, r);
export const fmt = (n) => Number(n).toLocaleString('en-US');

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

export function filterParams() {
  const p = new URLSearchParams();
  for (const k of FILTER_KEYS) {
    const v = state.params.get(k);
    if (v) p.set(k, v);
  }
  return p;
}

// What is asked of the API: the URL's filters, and Trail's own audit:view events left
// out unless "Show audit-log views" is on (`views=show` in the URL).
export function queryParams() {
  const p = filterParams();
  if (p.get('views') === 'show') p.delete('views');
  else p.set('views', 'hide');
  return p;
}

// The text field whose typing made the current history entry: further typing in it
// replaces that entry, so that a word typed is one step back, not one per pause.
let typingKey = null;

export function pushUrl(replace = false) {
  const p = filterParams();
  if (state.params.get('event')) p.set('event', state.params.get('event'));
  const url = `/audit${p.toString() ? '?' + p : ''}`;
  if (url !== location.pathname + location.search) {
    history[replace ? 'replaceState' : 'pushState'](null, '', url);
  }
}

export function setParam(key, value, { reload = true, typing = false } = {}) {
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
    ...integrityBanner(me.integrity),
    ...witnessBanner(me.witness),
    h('main', { class: 'layout' },
      h('aside', { class: 'filters', id: 'filters', 'aria-label': 'Filters' }),
      h('section', { class: 'list', id: 'events', 'aria-label': 'Events' },
        toolbar(),
        h('div', { class: 'timeline', id: 'timeline' }),
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

// Administrators see when Trail has stopped signing a log: its stored tree no longer
// agrees with its events' bytes, and nothing new is proven until it is repaired.
function integrityBanner(problems) {
  if (!problems || !problems.length) return [];
  return [h('aside', { class: 'integrity-banner', role: 'alert', id: 'integrity', 'aria-label': 'Log integrity' },
    h('strong', {}, 'Trail has stopped signing checkpoints.'),
    ' The stored log does not agree with the events\' bytes, so nothing new is proven until an operator repairs it (see /healthz and the system:verify events).',
    h('ul', {}, ...problems.map((p) => h('li', {}, `${p.org}: ${p.reason}`))))];
}

// Administrators see when the witnesses have not cosigned the newest checkpoints: how
// far the witnessed one lags the signed one, and each witness's last answer.
function witnessBanner(w) {
  if (!w) return [];
  const lag = w.lagging ? `The newest witnessed checkpoint (${fmt(w.newest_witnessed)}) lags the newest signed one (${fmt(w.newest_signed)}) by ${fmt(w.lag_seconds)} s.` : '';
  return [h('aside', { class: 'integrity-banner', role: 'alert', id: 'witnessing', 'aria-label': 'Witnesses' },
    h('strong', {}, 'Checkpoints are not being witnessed as the policy asks.'), ` ${lag} Events are kept; proofs of the newest are not yet witnessed (see /healthz and the witness:* events).`,
    h('ul', {}, ...w.witnesses.map((x) => h('li', {}, `${x.name}: ${x.status}${x.detail ? ` (${x.detail})` : ''}, cosigned ${fmt(x.size)}`))))];
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
      state.me.permissions.manage ? h('button', { class: 'secondary', id: 'schedules', onclick: openSchedules }, 'Schedules') : null,
      state.me.permissions.manage ? h('button', { class: 'secondary', id: 'holds', onclick: openHolds }, 'Holds') : null,
      h('button', { class: 'secondary', id: 'alerts', onclick: openAlerts }, 'Alerts'),
      h('button', { class: 'secondary', id: 'streams', onclick: openStreams }, 'Streams')));
}

// A key typed in the search box (`period:7d`, `sort:email`), so that the chips and the
// header show what the query does.
function typedTerm(key) {
  const m = (state.params.get('q') || '').match(new RegExp(`(?:^|\\s)${key}:(\\S+)`));
  return m ? m[1] : null;
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

export function renderFilters() {
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

export async function reloadList() {
  state.events = [];
  state.cursor = null;
  state.live.held = [];
  updateHeld();
  await loadPage(true);
  if (state.live.on) startLive();
  // Counts for a period the list refused would be refused too.
  if (!state.error) {
    loadFacetsSoon();
    loadTimeline();
  } else {
    document.getElementById('timeline')?.replaceChildren();
  }
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

export function row(e) {
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

export function markSelected() {
  const id = state.params.get('event');
  const rows = [...document.querySelectorAll('tbody tr[data-id]')];
  for (const tr of rows) {
    tr.classList.toggle('selected', tr.dataset.id === id);
    tr.setAttribute('aria-selected', String(tr.dataset.id === id));
  }
  if (rows.length && !rows.some((r) => r.tabIndex === 0)) rove(rows.find((r) => r.dataset.id === id) || rows[0]);
}

// Esc closes the filter drawer first, then the detail.
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape') return;
  const layout = document.querySelector('.layout');
  if (layout && layout.classList.contains('filters-open')) openFilters(false);
  else closeDetail();
});

boot();
