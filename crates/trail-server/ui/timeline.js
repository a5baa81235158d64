// The total and the timeline above the list: how many events match the filters, and a
// histogram of the period (per hour or day, stacked by result). Dragging across it, or
// choosing a bar with the arrow keys and Enter, narrows the period to those bars.

import { api, fmt, h, queryParams, renderFilters, setParam, state } from './app.js';

const SVG = 'http://www.w3.org/2000/svg';
const RESULTS = ['DONE', 'FAILED', 'PROCESSING', 'PENDING'];
const BAR = 10; // width of one bar in the drawing's units
const HEIGHT = 48;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// The newest request wins: an older one is cancelled, and a late answer is dropped.
let seq = 0;
let abort = null;

export async function loadTimeline() {
  const box = document.getElementById('timeline');
  if (!box) return;
  const mine = ++seq;
  if (abort) abort.abort();
  abort = new AbortController();
  box.dataset.ready = 'false';
  try {
    const t = await api(`/timeline?${queryParams()}`, { signal: abort.signal });
    if (mine !== seq) return;
    renderTimeline(t);
  } catch {
    if (mine !== seq) return;
    // The list says what went wrong; the timeline stays out of the way.
    box.replaceChildren();
    box.dataset.ready = 'true';
  }
}

const pad = (n) => String(n).padStart(2, '0');
function label(iso, bucket) {
  const d = new Date(iso);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return bucket === 'hour' ? `${day} ${pad(d.getHours())}:00` : day;
}

function renderTimeline(t) {
  const box = document.getElementById('timeline');
  if (!box) return;
  const total = t.exact ? `${fmt(t.total)} matching event${t.total === 1 ? '' : 's'}` : `More than ${fmt(t.bound)} matching events`;
  const bars = t.bars;
  const width = Math.max(bars.length, 1) * BAR;
  const max = Math.max(1, ...bars.map((b) => b.total));
  const every = t.bucket === 'hour' ? 'hour' : 'day';
  const svg = s('svg', {
    class: 'histogram', id: 'histogram', viewBox: `0 0 ${width} ${HEIGHT}`, preserveAspectRatio: 'none',
    role: 'img', tabindex: bars.length ? 0 : -1,
    'aria-label': `Matching events per ${every}${bars.length ? `, ${label(bars[0].start, t.bucket)} to ${label(bars[bars.length - 1].start, t.bucket)}` : ''}. Drag across, or use the arrow keys and Enter, to narrow the period.`,
  });
  bars.forEach((b, i) => {
    const g = s('g', { class: 'bar', 'data-start': b.start },
      s('title', {}, `${label(b.start, t.bucket)}: ${fmt(b.total)} event${b.total === 1 ? '' : 's'}${b.total ? ` (${RESULTS.filter((r) => b[r]).map((r) => `${r} ${fmt(b[r])}`).join(', ')})` : ''}`),
      // A full-height target, so that thin bars are easy to hit.
      s('rect', { class: 'hit', x: i * BAR, y: 0, width: BAR, height: HEIGHT }));
    let y = HEIGHT;
    for (const r of RESULTS) {
      if (!b[r]) continue;
      const hgt = Math.max((b[r] / max) * (HEIGHT - 2), 1);
      y -= hgt;
      g.append(s('rect', { class: `seg seg-${r.toLowerCase()}`, x: i * BAR + 1, y, width: BAR - 2, height: hgt }));
    }
    svg.append(g);
  });
  const selection = s('rect', { class: 'selection', x: 0, y: 0, width: 0, height: HEIGHT, visibility: 'hidden' });
  svg.append(selection);
  const legend = h('div', { class: 'legend' }, ...RESULTS.map((r) => h('span', { class: `key key-${r.toLowerCase()}` }, r)));
  const axis = bars.length
    ? h('div', { class: 'axis' }, h('span', {}, label(bars[0].start, t.bucket)), h('span', {}, label(bars[bars.length - 1].start, t.bucket)))
    : null;
  box.replaceChildren(
    h('div', { class: 'timeline-head' }, h('p', { class: 'total', id: 'total' }, total), legend),
    bars.length ? svg : h('p', { class: 'muted' }, 'No events in this period.'),
    axis);
  box.dataset.bucket = t.bucket;
  if (bars.length) narrowing(svg, selection, bars, t.bucket);
  box.dataset.ready = 'true';
}

// Narrows the period to bars `lo..hi` (inclusive): from the first bar's start to the
// last one's end.
function narrow(bars, bucket, lo, hi) {
  const step = bucket === 'hour' ? 3600e3 : 86400e3;
  const from = new Date(bars[lo].start).toISOString();
  const to = new Date(new Date(bars[hi].start).getTime() + step - 1).toISOString();
  state.params.delete('period');
  setParam('from', from, { reload: false });
  setParam('to', to);
  renderFilters();
}

function narrowing(svg, selection, bars, bucket) {
  const index = (ev) => {
    const r = svg.getBoundingClientRect();
    return Math.min(bars.length - 1, Math.max(0, Math.floor(((ev.clientX - r.left) / r.width) * bars.length)));
  };
  const show = (a, b) => {
    const [lo, hi] = [Math.min(a, b), Math.max(a, b)];
    selection.setAttribute('x', lo * BAR);
    selection.setAttribute('width', (hi - lo + 1) * BAR);
    selection.setAttribute('visibility', 'visible');
  };
  let start = null;
  svg.addEventListener('pointerdown', (ev) => {
    start = index(ev);
    svg.setPointerCapture(ev.pointerId);
    show(start, start);
  });
  svg.addEventListener('pointermove', (ev) => { if (start !== null) show(start, index(ev)); });
  svg.addEventListener('pointerup', (ev) => {
    if (start === null) return;
    const end = index(ev);
    const [lo, hi] = [Math.min(start, end), Math.max(start, end)];
    start = null;
    narrow(bars, bucket, lo, hi);
  });
  svg.addEventListener('pointercancel', () => { start = null; selection.setAttribute('visibility', 'hidden'); });
  // By keyboard: arrows choose a bar, Shift+arrows widen the choice, Enter narrows.
  let at = null;
  let anchor = null;
  svg.addEventListener('keydown', (ev) => {
    const move = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity }[ev.key];
    if (move !== undefined) {
      ev.preventDefault();
      // The first key press starts from the end it points away from.
      const from = at === null ? (move > 0 ? -1 : bars.length) : at;
      at = Math.min(bars.length - 1, Math.max(0, from + move));
      if (!ev.shiftKey || anchor === null) anchor = at;
      show(anchor, at);
      svg.setAttribute('aria-description', svg.querySelectorAll('g.bar title')[at].textContent);
    } else if (ev.key === 'Enter' && at !== null) {
      ev.preventDefault();
      narrow(bars, bucket, Math.min(anchor, at), Math.max(anchor, at));
    }
  });
}
