// End-to-end test of the /audit page in Debian's Chromium, driven by playwright-core.
// Run by crates/trail/tests/e2e.rs, which starts a real `trail serve` with known data
// and passes what it made in the environment. Exits non-zero on the first failure.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import http from 'node:http';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
const BASE = env('BASE');
const SHOTS = process.env.SCREENSHOTS || '';
const results = {};
const consoleErrors = [];

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

async function api(pathAndQuery, key, opts = {}) {
  const r = await fetch(BASE + pathAndQuery, { ...opts, headers: { authorization: `Bearer ${key}`, ...(opts.headers || {}) } });
  const text = await r.text();
  if (!r.ok) throw new Error(`${pathAndQuery}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function ingest(event) {
  const r = await api('/api/v1/events', env('INGEST_KEY'), { method: 'POST', body: JSON.stringify(event) });
  return r.events[0].id;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});

// Set while a step provokes an HTTP error on purpose (the browser logs those).
let expectHttpErrors = false;

function watch(page, who) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expectHttpErrors && m.text().includes('status of 400')) return;
    consoleErrors.push(`${who}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${who}: ${e.message}`));
}

async function rows(page) {
  return page.$$eval('tbody tr[data-id]', (trs) => trs.map((tr) => {
    const td = [...tr.querySelectorAll('td')];
    return {
      id: tr.dataset.id,
      utc: td[0].title.replace('UTC: ', ''),
      ip: td[1].textContent,
      performer: td[2].textContent,
      company: td[3].textContent,
      email: td[4].textContent,
      type: td[5].textContent,
      operation: td[6].querySelector('div').textContent,
      result: td[7].textContent,
    };
  }));
}

// Waits for the list to settle after a change of URL.
async function settled(page, urlPart) {
  if (urlPart) await page.waitForURL((u) => u.toString().includes(urlPart), { timeout: 60000 });
  // The page marks itself idle once no request or typed filter is pending.
  await page.waitForFunction(() => {
    const line = document.querySelector('.status-line');
    const loading = document.querySelector('td.state') && document.querySelector('td.state').textContent.startsWith('Loading');
    const idle = document.documentElement.dataset.pending === '0';
    return idle && line && !loading && (document.querySelector('tbody tr[data-id]') || document.querySelector('td.state'));
  }, null, { timeout: 60000 });
}

async function login(page, email, otp, password) {
  await page.goto(`${BASE}/audit`);
  await page.fill('#email', email);
  await page.fill('#password', otp);
  await page.click('button[type=submit]');
  await page.waitForSelector('#current');
  await page.fill('#current', otp);
  await page.fill('#new', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('tbody');
}

const step = async (name, fn) => {
  const t = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    await browser.close();
    process.exit(1);
  }
};

const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
const page = await ctx.newPage();
watch(page, 'admin');

await step('login page, wrong password, then login and password change', async () => {
  await page.goto(`${BASE}/audit`);
  await page.waitForSelector('#email');
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'login.png') });
  await page.fill('#email', env('ADMIN_EMAIL'));
  await page.fill('#password', 'not the password');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.querySelector('.form-error').textContent.includes('Wrong'));
  // The browser logs the deliberate failure's 401; nothing else may be logged.
  consoleErrors.length = 0;
  await login(page, env('ADMIN_EMAIL'), env('ADMIN_OTP'), 'a long admin password');
  await settled(page);
  const r = await rows(page);
  assert(r.length === 50, `first page has 50 rows, got ${r.length}`);
  const times = r.map((x) => x.utc);
  assert(times.every((t, i) => i === 0 || times[i - 1] >= t), 'newest first');
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-list.png') });
  assert(await page.isVisible('#load-more'), 'load more is offered');
  await page.click('#load-more');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-id]').length > 50);
  const scrolled = await page.evaluate(() => document.scrollingElement.scrollTop);
  assert(scrolled === 0, 'the page itself does not scroll; the list does');
});

await step('filter by period preset, type and result', async () => {
  await page.click('button[data-period="7d"]');
  await settled(page, 'period=7d');
  const weekAgo = new Date(Date.now() - 7 * 86400e3).toISOString();
  let r = await rows(page);
  assert(r.length > 0 && r.every((x) => x.utc >= weekAgo.replace('T', ' ').slice(0, 19)), 'rows within 7 days');
  await page.check('#f-category input[value="auth"]');
  await settled(page, 'category=auth');
  r = await rows(page);
  assert(r.length > 0 && r.every((x) => x.type === 'auth'), 'only auth rows');
  await page.check('#f-result input[value="FAILED"]');
  await settled(page, 'result=FAILED');
  r = await rows(page);
  assert(r.length > 0 && r.every((x) => x.type === 'auth' && x.result === 'FAILED'), 'only failed auth rows');
  const want = await api(`/api/v1/events?period=7d&category=auth&result=FAILED&limit=1000`, env('READ_KEY'));
  assert(r.length === Math.min(50, want.events.length), `row count ${r.length} vs ${want.events.length}`);
  assert(r.map((x) => x.id).join() === want.events.slice(0, 50).map((e) => e.id).join(), 'the same rows as the API');
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-filtered.png') });
  await page.click('#clear');
  await settled(page);
});

// Waits until the timeline shows the current filters.
async function timelined(page) {
  await settled(page);
  await page.waitForFunction(() => {
    const t = document.getElementById('timeline');
    return t && t.dataset.ready === 'true' && document.documentElement.dataset.pending === '0';
  }, null, { timeout: 60000 });
}

await step('the total and the timeline match the API; dragging across it, or arrows and Enter, narrow the period', async () => {
  await page.goto(`${BASE}/audit?period=7d`);
  await timelined(page);
  const starts = await page.$$eval('#histogram g.bar', (gs) => gs.map((g) => g.dataset.start));
  const want = await page.evaluate(() => fetch('/api/v1/timeline?period=7d&views=hide').then((r) => r.json()));
  assert(want.bucket === 'day' && starts.length === want.bars.length && starts.length >= 7, `${starts.length} bars vs ${want.bars.length}`);
  assert(want.bars.reduce((n, b) => n + b.total, 0) === want.total && want.exact, 'the bars add up to the total');
  let total = await page.$eval('#total', (e) => e.textContent.replace(/,/g, ''));
  assert(total.startsWith(`${want.total} matching`), `total "${total}" vs ${want.total}`);
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-timeline.png'), clip: { x: 0, y: 0, width: 1440, height: 420 } });
  // Drag from the third bar to the fifth.
  const box = await page.$eval('#histogram', (e) => { const r = e.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width, h: r.height }; });
  const xAt = (i) => box.x + ((i + 0.5) * box.w) / starts.length;
  await page.mouse.move(xAt(2), box.y + box.h / 2);
  await page.mouse.down();
  await page.mouse.move(xAt(3), box.y + box.h / 2, { steps: 4 });
  await page.mouse.move(xAt(4), box.y + box.h / 2, { steps: 4 });
  await page.mouse.up();
  await settled(page, 'from=');
  await timelined(page);
  const url = new URL(page.url());
  const [from, to] = [url.searchParams.get('from'), url.searchParams.get('to')];
  assert(!url.searchParams.get('period'), 'the preset gives way to the range');
  assert(new Date(from).getTime() === new Date(starts[2]).getTime(), `from ${from} vs ${starts[2]}`);
  assert(new Date(to).getTime() === new Date(starts[4]).getTime() + 86400e3 - 1, `to ${to} vs the end of ${starts[4]}`);
  const r = await rows(page);
  assert(r.length > 0 && r.every((x) => x.utc >= starts[2].replace('T', ' ').slice(0, 19) && new Date(x.utc.replace(' ', 'T') + 'Z') <= new Date(to)), 'rows within the dragged range');
  const narrowed = await page.evaluate((q) => fetch(`/api/v1/timeline?${q}&views=hide`).then((r) => r.json()), `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  total = await page.$eval('#total', (e) => e.textContent.replace(/,/g, ''));
  assert(total.startsWith(`${narrowed.total} matching`) && narrowed.bars.length === 3, `narrowed total "${total}" vs ${narrowed.total}, ${narrowed.bars.length} bars`);
  // By keyboard on an hourly timeline: the last two hours.
  await page.goto(`${BASE}/audit?period=24h`);
  await timelined(page);
  assert((await page.$eval('#timeline', (e) => e.dataset.bucket)) === 'hour', 'a day is drawn by the hour');
  const hours = await page.$$eval('#histogram g.bar', (gs) => gs.map((g) => g.dataset.start));
  await page.focus('#histogram');
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+ArrowLeft');
  await page.keyboard.press('Enter');
  await settled(page, 'from=');
  const k = new URL(page.url());
  assert(new Date(k.searchParams.get('from')).getTime() === new Date(hours[hours.length - 2]).getTime(), `keyboard from ${k.searchParams.get('from')}`);
  assert(new Date(k.searchParams.get('to')).getTime() === new Date(hours[hours.length - 1]).getTime() + 3600e3 - 1, `keyboard to ${k.searchParams.get('to')}`);
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

// Waits until the Type checks show counts for the current period.
async function counted(page) {
  // The panel may not be drawn yet right after a navigation.
  await page.waitForFunction(() => {
    const box = document.getElementById('f-category');
    return box && box.dataset.counted === 'true';
  }, null, { timeout: 60000 });
  await settled(page);
}

await step('typing in a text filter keeps its value and focus while the list reloads', async () => {
  await page.goto(`${BASE}/audit?period=7d`);
  await counted(page);
  await page.click('#f-actor');
  await page.keyboard.type('sarah');
  await settled(page, 'actor=sarah');
  await counted(page);
  await page.keyboard.type('.kim@acme.com');
  await settled(page, 'actor=sarah.kim');
  await counted(page);
  const [value, focus] = await page.evaluate(() => [document.getElementById('f-actor').value, document.activeElement.id]);
  assert(value === 'sarah.kim@acme.com' && focus === 'f-actor', `value "${value}", focus on "${focus}"`);
  await page.goto(`${BASE}/audit?period=7d`);
  await counted(page);
  await page.focus('#f-category input[value="auth"]');
  await page.keyboard.press('Space');
  await settled(page, 'category=auth');
  await counted(page);
  const box = await page.evaluate(() => document.activeElement && document.activeElement.value);
  assert(box === 'auth', `focus after Space is on "${box}"`);
});

await step('stale counts never replace newer ones', async () => {
  await page.goto(`${BASE}/audit`);
  await counted(page);
  // The 90-day counts answer late; Today's are asked for after them and answer first.
  let released;
  const late = new Promise((r) => { released = r; });
  const ninety = (url) => url.pathname === '/api/v1/facets' && url.searchParams.get('period') === '90d';
  await page.route(ninety, async (route) => {
    await late;
    await route.continue().catch(() => {});
  });
  const asked = page.waitForRequest((r) => ninety(new URL(r.url())), { timeout: 60000 });
  await page.click('button[data-period="90d"]');
  const request = await asked;
  await page.click('button[data-period="today"]');
  await settled(page, 'period=today');
  await counted(page);
  released();
  // Answered late, or cancelled: either way it is over once its response is settled.
  await request.response().catch(() => null);
  await settled(page);
  const shown = await page.$$eval('#f-category label', (ls) => ls.map((l) => [l.querySelector('input').value, l.querySelector('.count') ? l.querySelector('.count').textContent.replace(/,/g, '') : '']));
  const today = await page.evaluate(() => fetch('/api/v1/facets?period=today').then((r) => r.json()));
  const want = Object.fromEntries(today.categories.map((c) => [c.value, String(c.count)]));
  // Trail's own audit:view events keep arriving while the test browses: compared apart.
  const wrong = shown.filter(([c, n]) => c !== 'audit' && want[c] !== n);
  assert(wrong.length === 0, `counts are not Today's: ${JSON.stringify(wrong)} vs ${JSON.stringify(want)}`);
  await page.unroute(ninety);
});

await step('typing a word in the search box adds one history entry', async () => {
  await page.goto(`${BASE}/audit`);
  await settled(page);
  const before = await page.evaluate(() => history.length);
  await page.click('#search');
  for (const ch of 'deploy') {
    await page.keyboard.type(ch);
    // Each pause lets the typed filter apply, as a slow typist's would.
    await settled(page, `q=${'deploy'.slice(0, 1)}`);
  }
  await settled(page, 'q=deploy');
  const after = await page.evaluate(() => history.length);
  assert(after === before + 1, `history grew by ${after - before}`);
});

await step('sorting keeps the focus and ignores case', async () => {
  const token = `casesort-${Date.now()}`;
  await ingest({ action: 'service:deploy', resource: { type: 'service', name: token }, actor: { name: 'Banana Upper' } });
  await ingest({ action: 'service:deploy', resource: { type: 'service', name: token }, actor: { name: 'apple lower' } });
  await page.goto(`${BASE}/audit?resource=${token}`);
  await settled(page);
  await page.focus('th button[data-sort="performer"]');
  await page.keyboard.press('Enter');
  await settled(page, 'sort=performer');
  const focus = await page.evaluate(() => document.activeElement && document.activeElement.dataset.sort);
  assert(focus === 'performer', `focus after sorting is on "${focus}"`);
  const r = await rows(page);
  assert(r.map((x) => x.performer).join() === 'apple lower,Banana Upper', `case-insensitive order: ${r.map((x) => x.performer)}`);
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

await step('messages say what to do; an end before the start is refused', async () => {
  await page.goto(`${BASE}/audit`);
  await settled(page);
  const from = new Date(Date.now() - 2 * 86400000).toISOString().slice(0, 10);
  const to = new Date(Date.now() - 5 * 86400000).toISOString().slice(0, 10);
  await page.fill('#from', from);
  await settled(page, `from=${from}`);
  const url = page.url();
  await page.fill('#to', to);
  await page.waitForSelector('#range-error:not([hidden])');
  assert((await page.textContent('#range-error')).includes('“From” is after “To”'), 'the range error says what is wrong');
  assert(page.url() === url, 'an empty period is not applied');
  const r = await fetch(`${BASE}/api/v1/events?from=2026-02-01&to=2026-01-01`, { headers: { authorization: `Bearer ${env('READ_KEY')}` } });
  const body = await r.json();
  assert(r.status === 400 && body.error.field === 'to', `the API refuses it too: ${r.status} ${JSON.stringify(body)}`);
  // A query error is shown whole, not cut to one line.
  expectHttpErrors = true;
  await page.goto(`${BASE}/audit?q=${encodeURIComponent('nosuchkey:value and some more words to make the message long')}`);
  await page.waitForSelector('td.state.error');
  const cut = await page.$eval('td.state.error', (td) => td.scrollWidth > td.clientWidth + 1 || getComputedStyle(td).whiteSpace === 'nowrap');
  assert(!cut, 'the whole error message is visible');
  // Beyond the online window: a plain sentence with a local date, not a raw timestamp.
  const day = new Date(Date.now() - 150 * 86400000).toISOString().slice(0, 10);
  await page.goto(`${BASE}/audit?from=${day}`);
  await page.waitForSelector('#download-period');
  const text = await page.textContent('td.state');
  assert(/^Online queries reach back \d+ days \(to \d{4}-\d\d-\d\d\)\./.test(text) && !/\dT\d|Z\)/.test(text), `window message: ${text}`);
  expectHttpErrors = false;
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

// Runs axe-core on the page as it is; returns the violations.
async function axe(page) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return r.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.length} × ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

// axe-core is injected as a script: a context of its own lets it past the page's CSP
// (the main context keeps the CSP in force).
const actx = await browser.newContext({ viewport: { width: 1440, height: 900 }, bypassCSP: true });
const apage = await actx.newPage();
watch(apage, 'a11y');
await apage.goto(`${BASE}/audit`);
await apage.fill('#email', env('ADMIN_EMAIL'));
await apage.fill('#password', 'a long admin password');
await apage.click('button[type=submit]');
await apage.waitForSelector('tbody');

await step('accessibility: no axe violations, one Tab stop for the list, a skip link, focus into the detail and back', async () => {
  await apage.goto(`${BASE}/audit`);
  await counted(apage);
  let v = await axe(apage);
  assert(v.length === 0, `list: ${v.join('; ')}`);
  const stops = await apage.$$eval('tbody tr[data-id]', (trs) => trs.filter((t) => t.tabIndex === 0).length);
  assert(stops === 1, `rows that take Tab: ${stops}`);
  await apage.keyboard.press('Tab');
  assert((await apage.evaluate(() => document.activeElement.className)) === 'skip', 'the skip link is the first Tab stop');
  await apage.keyboard.press('Enter');
  assert(await apage.evaluate(() => !!document.activeElement.closest('tbody tr[data-id]')), 'the skip link lands on the list');
  const first = await apage.evaluate(() => document.activeElement.dataset.id);
  await apage.keyboard.press('ArrowDown');
  const second = await apage.evaluate(() => document.activeElement.dataset.id);
  assert(second && second !== first, 'ArrowDown moves to the next row');
  await apage.keyboard.press('Tab');
  assert(await apage.evaluate(() => !document.activeElement.closest('tbody')), 'one Tab leaves the list');
  await apage.focus(`tbody tr[data-id="${second}"]`);
  await apage.keyboard.press('Enter');
  await apage.waitForFunction(() => document.activeElement && document.activeElement.id === 'detail-title', null, { timeout: 60000 });
  v = await axe(apage);
  assert(v.length === 0, `detail: ${v.join('; ')}`);
  await apage.keyboard.press('Escape');
  await apage.waitForFunction((id) => document.activeElement && document.activeElement.dataset.id === id, second, { timeout: 60000 });
  await apage.goto(`${BASE}/audit?category=auth&result=PENDING,FAILED`);
  await counted(apage);
  v = await axe(apage);
  assert(v.length === 0, `filtered: ${v.join('; ')}`);
});

// Whether an element is drawn inside the viewport (not clipped off either side).
async function onScreen(page, selector) {
  return page.$eval(selector, (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5;
  });
}

await step('with the detail open at 1280, 1400 and 1440 px: Type, Operation and Result on screen, the search usable', async () => {
  for (const width of [1280, 1400, 1440]) {
    await apage.setViewportSize({ width, height: 850 });
    await apage.goto(`${BASE}/audit`);
    await settled(apage);
    await apage.click('tbody tr[data-id]');
    await apage.waitForSelector('.detail dl.kv');
    for (const col of ['type', 'operation', 'result']) {
      const visible = await apage.$eval(`th button[data-sort="${col}"]`, (b) => {
        const r = b.getBoundingClientRect();
        const wrap = document.querySelector('.table-wrap').getBoundingClientRect();
        return r.width > 0 && r.right <= wrap.right + 0.5;
      });
      assert(visible, `${col} column visible at ${width} px with the detail open`);
    }
    const box = await apage.$eval('#search', (el) => el.getBoundingClientRect().width);
    const hint = await apage.$eval('#search-hint', (el) => el.getBoundingClientRect().height);
    assert(box >= 480, `search box ${box} px wide at ${width} px with the detail open`);
    assert(hint <= 40, `search help ${hint} px tall at ${width} px with the detail open`);
    if (SHOTS && width === 1280) await apage.screenshot({ path: path.join(SHOTS, 'audit-detail-1280.png') });
    await apage.keyboard.press('Escape');
  }
  await apage.setViewportSize({ width: 1440, height: 900 });
});

await step('a phone (390 × 844): essential columns, a filter drawer, a full-screen detail with its close', async () => {
  const pctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const p = await pctx.newPage();
  watch(p, 'phone');
  await p.goto(`${BASE}/audit`);
  await p.fill('#email', env('ADMIN_EMAIL'));
  await p.fill('#password', 'a long admin password');
  await p.click('button[type=submit]');
  await p.waitForSelector('tbody tr[data-id]');
  await settled(p);
  const width = await p.evaluate(() => document.documentElement.scrollWidth);
  assert(width <= 390, `the page is ${width} px wide`);
  for (const col of ['timestamp', 'performer', 'operation', 'result']) {
    assert(await onScreen(p, `th button[data-sort="${col}"]`), `${col} column on screen`);
  }
  if (SHOTS) await p.screenshot({ path: path.join(SHOTS, 'audit-phone.png') });
  assert(!(await p.isVisible('#f-actor')), 'the filters start closed');
  await p.click('#filters-toggle');
  await p.waitForFunction(() => document.querySelector('.layout').classList.contains('filters-open'));
  await p.waitForFunction(() => {
    const r = document.getElementById('f-actor').getBoundingClientRect();
    return r.left >= 0 && r.right <= innerWidth;
  });
  await p.click('#filters-close');
  await p.click('tbody tr[data-id]');
  await p.waitForSelector('.detail dl.kv');
  assert(await onScreen(p, '.detail .detail-head .close'), 'the detail\'s close is on screen');
  const sheet = await p.$eval('.detail', (d) => { const r = d.getBoundingClientRect(); return r.left <= 0 && r.right >= innerWidth - 1; });
  assert(sheet, 'the detail is a full-screen sheet');
  await p.click('.detail .detail-head .close');
  await p.waitForSelector('.detail', { state: 'hidden' });
  await p.click('#export');
  await p.waitForSelector('.menu:not([hidden])');
  assert(await onScreen(p, '.menu'), 'the export menu is on screen');
  await p.keyboard.press('Escape');
  await p.click('body', { position: { x: 5, y: 5 } });
  await p.click('#download');
  await p.waitForSelector('#download-dialog[open]');
  assert(await onScreen(p, '#download-dialog'), 'the download dialog is on screen');
  assert(await onScreen(p, '#dl-go'), 'its download button is on screen');
  await p.click('#download-dialog button.secondary');
  await pctx.close();
});

await step('Trail\'s own views are hidden until asked for', async () => {
  await page.goto(`${BASE}/audit?category=audit`);
  await settled(page);
  let r = await rows(page);
  assert(!r.some((x) => x.operation === 'view'), `no audit:view rows by default: ${JSON.stringify(r.slice(0, 3))}`);
  await page.check('#f-views');
  await settled(page, 'views=show');
  r = await rows(page);
  assert(r.some((x) => x.operation === 'view'), 'the toggle shows them');
  await page.uncheck('#f-views');
  await settled(page);
  assert(!page.url().includes('views='), 'hidden again, the default');
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

await step('the export menu by keyboard; typed period and sort show; even rows; a local-time header', async () => {
  await page.goto(`${BASE}/audit`);
  await settled(page);
  await page.focus('#export');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.menu:not([hidden])');
  assert((await page.evaluate(() => document.activeElement.dataset.format)) === 'csv', 'the menu opens on its first item');
  await page.keyboard.press('ArrowDown');
  assert((await page.evaluate(() => document.activeElement.dataset.format)) === 'xlsx', 'ArrowDown moves to the next format');
  await page.keyboard.press('Escape');
  await page.waitForSelector('.menu', { state: 'hidden' });
  assert((await page.evaluate(() => document.activeElement.id)) === 'export', 'Esc returns to the button');
  const heights = await page.$$eval('tbody tr[data-id]', (trs) => [...new Set(trs.map((t) => t.offsetHeight))]);
  assert(heights.length === 1, `row heights: ${heights}`);
  assert((await page.textContent('th button[data-sort="timestamp"]')).includes('local'), 'the time column says local');
  await page.fill('#search', 'period:7d sort:email');
  await settled(page, 'q=period');
  await page.waitForSelector('button.preset.on[data-period="7d"]');
  await page.waitForSelector('th[aria-sort="ascending"] button[data-sort="email"]');
  await page.fill('#search', '');
  await settled(page);
  // A detail without request data shows no empty Request heading.
  const id = await ingest({ action: 'service:restart', actor: { name: 'Quiet' } });
  await page.goto(`${BASE}/audit?event=${id}`);
  await page.waitForFunction((id) => document.querySelector('.detail') && document.querySelector('.detail').textContent.includes(id) && document.querySelector('.detail dl.kv'), id, { timeout: 60000 });
  const heads = await page.$$eval('.detail h3', (hs) => hs.map((x) => x.textContent));
  assert(!heads.includes('Request') && heads.includes('Actor'), `headings: ${heads}`);
  await page.keyboard.press('Escape');
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

await step('the user field suggests the period\'s actors; operation and resource type filter', async () => {
  await page.goto(`${BASE}/audit?period=7d`);
  await counted(page);
  const options = await page.$$eval('#actors option', (os) => os.map((o) => o.value));
  const facets = await page.evaluate(() => fetch('/api/v1/facets?period=7d').then((r) => r.json()));
  assert(options.length > 0 && options.includes(facets.users[0].value), `suggestions: ${options.slice(0, 5)}`);
  assert((await page.getAttribute('#f-actor', 'list')) === 'actors', 'the field uses them');
  await page.fill('#f-operation', 'login');
  await settled(page, 'operation=login');
  let r = await rows(page);
  assert(r.length > 0 && r.every((x) => x.operation === 'login'), 'only logins');
  await page.fill('#f-operation', '');
  await page.fill('#f-resource_type', 'secret');
  await settled(page, 'resource_type=secret');
  r = await rows(page);
  const want = await page.evaluate(() => fetch('/api/v1/events?period=7d&resource_type=secret&views=hide&limit=50').then((r) => r.json()));
  assert(r.length > 0 && r.map((x) => x.id).join() === want.events.map((e) => e.id).join(), 'the rows the API gives for that resource type');
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

await step('scheduled exports in the page: create from the filters, run now, delete', async () => {
  await page.goto(`${BASE}/audit?category=auth&result=FAILED`);
  await settled(page);
  await page.click('#schedules');
  await page.waitForSelector('#schedules-dialog[open]');
  const query = await page.inputValue('#sched-query');
  assert(query.includes('category:auth') && query.includes('result:FAILED'), `filters taken: ${query}`);
  await page.fill('#sched-name', 'Failed logins, weekly');
  await page.selectOption('#sched-cadence', 'weekly');
  await page.selectOption('#sched-weekday', 'monday');
  await page.fill('#sched-at', '06:30');
  await page.fill('#sched-directory', 'e2e-weekly');
  // A bad recipient is named.
  expectHttpErrors = true;
  await page.fill('#sched-recipients', 'not an address');
  await page.click('#sched-create');
  await page.waitForFunction(() => document.getElementById('sched-error').textContent.startsWith('Recipients'));
  expectHttpErrors = false;
  await page.fill('#sched-recipients', '');
  await page.click('#sched-create');
  await page.waitForSelector('#schedules-dialog tbody tr[data-id]');
  const row = await page.textContent('#schedules-dialog tbody tr[data-id]');
  assert(row.includes('Failed logins, weekly') && row.includes('weekly monday 06:30'), `listed: ${row}`);
  await page.click('#schedules-dialog tbody tr[data-id] button.run');
  await page.waitForFunction(() => document.getElementById('sched-status').textContent.includes('ran:'), null, { timeout: 60000 });
  await page.click('#schedules-dialog tbody tr[data-id] button.delete');
  await page.waitForFunction(() => document.getElementById('sched-status').textContent.includes('deleted'));
  assert(!(await page.$('#schedules-dialog tbody tr[data-id]')), 'deleted from the list');
  await page.click('#sched-close');
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

await step('search, with the query language', async () => {
  await page.fill('#search', 'checkout-api');
  await settled(page, 'q=checkout-api');
  let r = await rows(page);
  // The API's answer also holds the audit:view event recording this very search.
  const want = await api(`/api/v1/events?q=checkout-api&limit=100`, env('READ_KEY'));
  const wantIds = want.events.filter((e) => !e.action.startsWith('audit:')).map((e) => e.id);
  const gotIds = r.filter((x) => x.type !== 'audit').map((x) => x.id);
  assert(gotIds.length > 0 && gotIds.join() === wantIds.slice(0, gotIds.length).join(), `search rows ${gotIds.length} vs ${wantIds.length}`);
  await page.fill('#search', 'category:auth result:FAILED');
  await settled(page, 'q=category');
  r = await rows(page);
  assert(r.length > 0 && r.every((x) => x.type === 'auth' && x.result === 'FAILED'), 'query language applies');
  await page.fill('#search', '');
  await settled(page);
});

await step('sort by clicking a column header', async () => {
  await page.click('th button[data-sort="email"]');
  await settled(page, 'sort=email');
  let r = await rows(page);
  const emails = r.map((x) => x.email).filter((e) => e !== '—');
  assert(emails.length > 10 && emails.every((e, i) => i === 0 || emails[i - 1].toLowerCase() <= e.toLowerCase()), 'ascending by email');
  await page.click('th button[data-sort="email"]');
  await settled(page, 'sort=-email');
  r = await rows(page);
  const desc = r.map((x) => x.email).filter((e) => e !== '—');
  assert(desc.every((e, i) => i === 0 || desc[i - 1].toLowerCase() >= e.toLowerCase()), 'descending by email');
  await page.click('th button[data-sort="timestamp"]');
  await settled(page);
});

const deployId = env('DEPLOY_ID');
await step('open the detail and see the diff; keyboard', async () => {
  await page.fill('#search', env('DEPLOY_REQUEST'));
  await settled(page, 'q=');
  await page.click(`tbody tr[data-id="${deployId}"]`);
  await page.waitForSelector('.detail table.diff');
  const diff = await page.$$eval('.detail table.diff tbody tr', (trs) => trs.map((t) => [...t.children].map((c) => c.textContent)));
  assert(diff.some(([p, o, n]) => p === 'image' && o.includes('v1.4.2') && n.includes('v1.5.0')), `image change shown: ${JSON.stringify(diff)}`);
  const text = await page.textContent('.detail');
  assert(text.includes(deployId) && text.includes(env('DEPLOY_REQUEST')), 'event id and request id shown');
  // The inclusion mark appears only after this browser checked the proof and the
  // checkpoint's signature itself (WebCrypto SHA-256 and Ed25519).
  await page.waitForSelector('#proof-mark.ok, #proof-mark.bad');
  const mark = await page.textContent('#proof-mark');
  assert(mark.includes('Included in the signed checkpoint') && mark.includes('proof and signature checked by this browser'), `proof checked in the browser: ${mark}`);
  assert(page.url().includes(`event=${deployId}`), 'the selection is in the URL');
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-detail.png') });
  await page.keyboard.press('Escape');
  await page.waitForSelector('.detail', { state: 'hidden' });
  assert(!page.url().includes('event='), 'Esc closes the detail');
  await page.focus(`tbody tr[data-id="${deployId}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('.detail table.diff');
  await page.keyboard.press('Escape');
  await page.waitForSelector('.detail', { state: 'hidden' });
  // A server that hands out bytes other than the proof's gets no mark.
  await page.route(`**/api/v1/events/${deployId}`, async (route) => {
    const resp = await route.fetch();
    const body = await resp.json();
    const bytes = Buffer.from(body.proof.leaf, 'base64').toString('utf8').replace('v1.5.0', 'v1.5.1');
    body.event = JSON.parse(bytes);
    body.proof.leaf = Buffer.from(bytes, 'utf8').toString('base64');
    await route.fulfill({ response: resp, json: body });
  });
  await page.focus(`tbody tr[data-id="${deployId}"]`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#proof-mark.ok, #proof-mark.bad');
  const forged = await page.textContent('#proof-mark');
  assert(forged.includes('Not proven') && forged.includes('root'), `a forged event is not marked included: ${forged}`);
  await page.unroute(`**/api/v1/events/${deployId}`);
  await page.keyboard.press('Escape');
  await page.fill('#search', '');
  await settled(page);
});

await step('the organization is the tenant; a claimed company is the actor\'s', async () => {
  const id = await ingest({ action: 'auth:login', request_id: 'claims-globex', actor: { email: 'mallory@x.com', company: 'globex' } });
  await page.fill('#search', 'claims-globex');
  await settled(page, 'q=');
  await page.waitForSelector(`tbody tr[data-id="${id}"]`, { timeout: 60000 });
  // The search may also find Trail's own audit:view of it; the event is found by id.
  const r = await rows(page);
  const row = r.find((x) => x.id === id);
  assert(row && row.company === 'acme' && r.every((x) => x.company === 'acme'), `the Company column shows the tenant: ${JSON.stringify(r)}`);
  await page.click(`tbody tr[data-id="${id}"]`);
  // The detail is fetched after the click: wait until it shows this event.
  await page.waitForFunction((id) => {
    const d = document.querySelector('.detail');
    return d && d.textContent.includes(id) && d.querySelector('dl.kv dt');
  }, id, { timeout: 60000 });
  const pairs = await page.$$eval('.detail dl.kv dt', (dts) => dts.map((t) => [t.textContent, t.nextElementSibling.textContent]));
  assert(pairs.some(([k, v]) => k === 'Organization' && v === 'acme'), `organization: ${JSON.stringify(pairs)}`);
  assert(pairs.some(([k, v]) => k === 'Company (as sent)' && v === 'globex'), `claimed company: ${JSON.stringify(pairs)}`);
  await page.keyboard.press('Escape');
  await page.fill('#search', '');
  await settled(page);
});

await step('deep link restores filters and selection; back and forward', async () => {
  await page.goto(`${BASE}/audit?category=service&result=DONE&event=${deployId}`);
  await page.waitForSelector('.detail table.diff');
  await settled(page);
  assert(await page.isChecked('#f-category input[value="service"]'), 'type filter restored');
  assert(await page.isChecked('#f-result input[value="DONE"]'), 'result filter restored');
  const r = await rows(page);
  assert(r.every((x) => x.type === 'service' && x.result === 'DONE'), 'rows filtered');
  const sel = await page.$(`tbody tr.selected[data-id="${deployId}"]`);
  assert(sel, 'the linked entry is selected in the list');
  await page.click('button[data-period="24h"]');
  await settled(page, 'period=24h');
  await page.goBack();
  await settled(page);
  assert(!page.url().includes('period=24h') && page.url().includes('category=service'), 'back restores the previous filters');
  await page.goForward();
  await settled(page, 'period=24h');
  await page.goto(`${BASE}/audit`);
  await settled(page);
});

await step('live view shows a new event; pause holds it back', async () => {
  await page.click('#live');
  // The server subscribes the stream before it answers, so once connected nothing is missed.
  await page.waitForSelector('#live[data-connected="true"]', { timeout: 60000 });
  const first = await ingest({ action: 'service:deploy', request_id: 'live-1', actor: { name: 'Live Tester', email: 'live@acme.com' } });
  await page.waitForSelector(`tbody tr[data-id="${first}"]`, { timeout: 60000 });
  const top = await page.$eval('tbody tr[data-id]', (tr) => tr.dataset.id);
  assert(top === first, 'the new event is on top');
  assert((await page.textContent('#announce')).startsWith('1 new event'), 'the arrival is announced politely');
  await page.click('#pause');
  const second = await ingest({ action: 'service:deploy', request_id: 'live-2', actor: { name: 'Live Tester', email: 'live@acme.com' } });
  await page.waitForFunction(() => document.getElementById('held').textContent.startsWith('1 new'), null, { timeout: 60000 });
  assert(!(await page.$(`tbody tr[data-id="${second}"]`)), 'held back while paused');
  await page.click('#pause');
  await page.waitForSelector(`tbody tr[data-id="${second}"]`, { timeout: 60000 });
  // Several events held while paused come in on top newest first, as the list is.
  await page.click('#pause');
  const held = [];
  for (const n of [3, 4, 5]) held.push(await ingest({ action: 'service:deploy', request_id: `live-${n}`, actor: { name: 'Live Tester' } }));
  await page.waitForFunction(() => document.getElementById('held').textContent.startsWith('3 new'), null, { timeout: 60000 });
  await page.click('#pause');
  await page.waitForSelector(`tbody tr[data-id="${held[0]}"]`, { timeout: 60000 });
  const top3 = await page.$$eval('tbody tr[data-id]', (trs) => trs.slice(0, 3).map((tr) => tr.dataset.id));
  assert(top3.join() === held.slice().reverse().join(), `resumed order ${top3} vs newest first ${held.slice().reverse()}`);
  await page.click('#live');
});

await step('export downloads exactly the filtered rows', async () => {
  await page.goto(`${BASE}/audit?category=auth&result=FAILED`);
  await settled(page);
  await page.click('#export');
  await page.waitForSelector('.menu:not([hidden])');
  const note = await page.textContent('.menu .note');
  assert(note.includes('personal data'), 'personal data note');
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-export.png') });
  // The file goes straight from the server to the browser's download: no blob in the page.
  await page.evaluate(() => {
    window.blobs = 0;
    const make = URL.createObjectURL;
    URL.createObjectURL = (...a) => { window.blobs += 1; return make(...a); };
  });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('.menu button[data-format="csv"]')]);
  const name = download.suggestedFilename();
  assert(/^Audit_Log_\d{8}\.csv$/.test(name), `file name ${name}`);
  assert(download.url().includes('/api/v1/exports/') && (await page.evaluate(() => window.blobs)) === 0, `streamed by the browser: ${download.url()}`);
  const file = await download.path();
  const lines = fs.readFileSync(file, 'utf8').trim().split('\r\n');
  const want = await api(`/api/v1/events?category=auth&result=FAILED&limit=1000`, env('READ_KEY'));
  assert(lines.length - 1 === want.events.length, `csv rows ${lines.length - 1} vs ${want.events.length}`);
  const ids = new Set(want.events.map((e) => e.id));
  assert(lines.slice(1).every((l) => [...ids].some((id) => l.includes(id))), 'every row is a filtered event');
});

await step('download log covers any period, archived logs included', async () => {
  await page.goto(`${BASE}/audit`);
  await settled(page);
  await page.click('#download');
  await page.waitForSelector('#download-dialog[open]');
  const day = (n) => new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);
  await page.fill('#dl-from', day(150));
  await page.fill('#dl-to', day(0));
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-download.png') });
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-go')]);
  const name = download.suggestedFilename();
  assert(/^Audit_Log_\d{8}\.csv$/.test(name), `file name ${name}`);
  const lines = fs.readFileSync(await download.path(), 'utf8').trim().split('\r\n');
  const r = await fetch(`${BASE}/api/v1/download?format=jsonl&from=${day(150)}&to=${day(0)}`, { headers: { authorization: `Bearer ${env('READ_KEY')}` } });
  assert(r.ok, `download api ${r.status}`);
  const want = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
  // Rows may have been added since (self-audit of the download itself comes after).
  assert(lines.length - 1 >= want.length - 2 && lines.length - 1 <= want.length + 2, `csv rows ${lines.length - 1} vs ${want.length}`);
  const old = want.filter((e) => Date.parse(e.timestamp) < Date.now() - 95 * 86400000);
  assert(old.length > 50, `archived events in the period: ${old.length}`);
  assert(lines.some((l) => l.includes(old[0].id)), 'an archived event is in the file');
  // The online list refuses that period and offers the download for it.
  const list = await fetch(`${BASE}/api/v1/events?from=${day(150)}`, { headers: { authorization: `Bearer ${env('READ_KEY')}` } });
  assert(list.status === 400, `window ${list.status}`);
  expectHttpErrors = true;
  await page.goto(`${BASE}/audit?from=${day(150)}`);
  await page.waitForSelector('#download-period');
  await page.click('#download-period');
  await page.waitForSelector('#download-dialog[open]');
  assert((await page.inputValue('#dl-from')) === day(150), 'the dialog takes the period');
  await page.click('#download-dialog button.secondary');
  await page.waitForLoadState('networkidle');
  expectHttpErrors = false;
});

await step('alerts: rules, destinations with clear errors, a firing that links to its events', async () => {
  await page.goto(`${BASE}/audit`);
  await settled(page);
  await page.click('#alerts');
  await page.waitForSelector('#alert-rules tr[data-rule="failed_logins"]');
  const rules = await page.$$eval('#alert-rules tr', (trs) => trs.map((t) => t.dataset.rule));
  assert(['failed_logins', 'mass_deletion', 'permission_escalation', 'api_token_created', 'new_admin_ip', 'large_export'].every((r) => rules.includes(r)), `rules ${rules}`);
  // An internal address is refused, naming the field (the 400 is the answer expected).
  expectHttpErrors = true;
  await page.fill('#dest-name', 'chat');
  await page.selectOption('#dest-kind', 'slack');
  await page.fill('#dest-target', 'http://127.0.0.1:9/hook');
  await page.click('#dest-create');
  await page.waitForFunction(() => document.getElementById('alerts-error').textContent.includes('url'), null, { timeout: 60000 });
  expectHttpErrors = false;
  await page.fill('#dest-name', 'on call');
  await page.selectOption('#dest-kind', 'email');
  await page.fill('#dest-target', 'oncall@acme.test');
  await page.click('#dest-create');
  await page.waitForFunction(() => [...document.querySelectorAll('#alert-destinations td')].some((t) => t.textContent === 'oncall@acme.test'), null, { timeout: 60000 });
  // Three failed logins fire once the threshold is three.
  await page.fill('#alert-rules tr[data-rule="failed_logins"] input.threshold', '3');
  await page.press('#alert-rules tr[data-rule="failed_logins"] input.threshold', 'Enter');
  await page.locator('#alert-rules tr[data-rule="failed_logins"] input.threshold').blur();
  await page.waitForFunction(() => document.getElementById('alerts-status').textContent.includes('failed_logins'), null, { timeout: 60000 });
  const rule = await page.evaluate(() => fetch('/api/v1/alerts/rules').then((r) => r.json()));
  assert(rule.rules.find((r) => r.name === 'failed_logins').threshold === 3, 'threshold saved');
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await ingest({ action: 'auth:login', result: 'FAILED', actor: { email: 'mallory@acme.test' }, source_ip: '198.51.100.4' }));
  await page.click('#alerts-close');
  let link = null;
  const deadline = Date.now() + 60000;
  while (!link && Date.now() < deadline) {
    await page.click('#alerts');
    await page.waitForSelector('#alert-firings li');
    await page.waitForFunction(() => document.documentElement.dataset.pending === '0', null, { timeout: 60000 });
    link = await page.$eval('#alert-firings', (ul) => { const a = [...ul.querySelectorAll('a.firing')].find((x) => x.textContent.startsWith('failed_logins')); return a ? a.getAttribute('href') : null; });
    if (!link) await page.click('#alerts-close');
  }
  assert(link && link.startsWith('/audit?') && link.includes(`event=${ids[2]}`), `firing link ${link}`);
  const status = await page.$$eval('#alert-deliveries tr[data-status]', (trs) => trs.map((t) => t.dataset.status));
  assert(status.length > 0, 'the mail delivery is listed');
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-alerts.png') });
  await page.click(`#alert-firings a[href="${link}"]`);
  await settled(page, 'event=');
  await page.waitForSelector('#detail-title');
  const r = await rows(page);
  assert(r.length === 3 && r.every((x) => x.email === 'mallory@acme.test' && x.result === 'FAILED'), `the firing's events: ${JSON.stringify(r.map((x) => x.email))}`);
  await page.goto(`${BASE}/audit`);
  await settled(page);
  await apage.goto(`${BASE}/audit`);
  await settled(apage);
  await apage.click('#alerts');
  await apage.waitForSelector('#alert-deliveries tr');
  await apage.waitForFunction(() => document.documentElement.dataset.pending === '0', null, { timeout: 60000 });
  const v = await axe(apage);
  assert(v.length === 0, `alerts dialog: ${v.join('; ')}`);
});

await step('streams: a clear error, a stream to a receiver here with its health, pause and resume', async () => {
  // The receiver: every batch's lines, and the seqs its headers name.
  const got = { lines: [], batches: [] };
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      got.lines.push(...body.split('\n').filter(Boolean));
      got.batches.push([Number(req.headers['trail-first-seq']), Number(req.headers['trail-last-seq']), req.headers['trail-checkpoint'] || '']);
      res.writeHead(204).end();
    });
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  const port = receiver.address().port;
  try {
    await page.goto(`${BASE}/audit`);
    await settled(page);
    await page.click('#streams');
    await page.waitForSelector('#streams-dialog[open] #stream-rows tr');
    // A URL that is not http(s) is refused, naming the field (the 400 is expected).
    expectHttpErrors = true;
    await page.fill('#stream-name', 'siem');
    await page.fill('#stream-target', 'ftp://siem.example.com/in');
    await page.click('#stream-create');
    await page.waitForFunction(() => document.getElementById('streams-error').textContent.startsWith('url:'), null, { timeout: 60000 });
    expectHttpErrors = false;
    await page.fill('#stream-target', `http://127.0.0.1:${port}/in`);
    await page.selectOption('#stream-start', 'beginning');
    await page.click('#stream-create');
    await page.waitForFunction(() => document.getElementById('stream-secret').textContent.includes('whsec_'), null, { timeout: 60000 });
    // Everything arrives in seq order; the row says so.
    await page.waitForFunction(() => [...document.querySelectorAll('#stream-rows tr[data-status="active"] td.lag')].some((t) => t.textContent === 'caught up'), null, { timeout: 60000 });
    const seqs = got.lines.map((l) => JSON.parse(l).seq);
    assert(seqs.length > 100 && seqs.every((x, i) => x === i), `the receiver got seqs 0..${seqs.length - 1} in order`);
    assert(got.batches.every(([f, l, cp]) => f <= l && cp.length > 0), 'each batch names its seqs and a checkpoint');
    const row = await page.$eval('#stream-rows tr[data-status="active"]', (tr) => tr.textContent);
    assert(row.includes('http · jsonl') && row.includes(String(seqs.length - 1)), `the row: ${row}`);
    if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'audit-streams.png') });
    await page.click('#stream-rows button.pause');
    await page.waitForSelector('#stream-rows tr[data-status="paused"] button.resume');
    await page.click('#stream-rows button.resume');
    await page.waitForSelector('#stream-rows tr[data-status="active"] button.pause');
    await page.click('#streams-close');
    await apage.goto(`${BASE}/audit`);
    await settled(apage);
    await apage.click('#streams');
    await apage.waitForSelector('#stream-rows tr[data-status]');
    await apage.waitForFunction(() => document.documentElement.dataset.pending === '0', null, { timeout: 60000 });
    const v = await axe(apage);
    assert(v.length === 0, `streams dialog: ${v.join('; ')}`);
    await apage.click('#streams-close');
  } finally {
    receiver.close();
  }
});

await step('first paint', async () => {
  const p = await ctx.newPage();
  const t = Date.now();
  await p.goto(`${BASE}/audit`);
  await p.waitForSelector('tbody tr[data-id]');
  results.rows_visible_ms = Date.now() - t;
  results.first_contentful_paint_ms = await p.evaluate(() => {
    const e = performance.getEntriesByType('paint').find((x) => x.name === 'first-contentful-paint');
    return e ? Math.round(e.startTime) : null;
  });
  await p.close();
});

await step('a viewer does not see restricted categories', async () => {
  const vctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const v = await vctx.newPage();
  watch(v, 'viewer');
  // A wrong current password is named as such.
  await v.goto(`${BASE}/audit`);
  await v.fill('#email', env('VIEWER_EMAIL'));
  await v.fill('#password', env('VIEWER_OTP'));
  await v.click('button[type=submit]');
  await v.waitForSelector('#current');
  await v.fill('#current', 'not the one-time password');
  await v.fill('#new', 'a long viewer password');
  expectHttpErrors = true;
  await v.click('button[type=submit]');
  await v.waitForFunction(() => document.querySelector('.form-error').textContent !== '');
  expectHttpErrors = false;
  const said = await v.textContent('.form-error');
  assert(said === 'Current password is wrong.', `password message: ${said}`);
  await v.fill('#current', env('VIEWER_OTP'));
  await v.fill('#new', 'a long viewer password');
  await v.click('button[type=submit]');
  await v.waitForSelector('tbody');
  await settled(v);
  await v.waitForSelector('#f-category input');
  const cats = await v.$$eval('#f-category input', (xs) => xs.map((x) => x.value));
  assert(cats.length > 3 && !cats.includes('secret'), `no secret type offered: ${cats}`);
  let r = await rows(v);
  assert(r.length > 0 && r.every((x) => x.type !== 'secret'), 'no secret rows');
  await v.fill('#search', 'secret');
  await settled(v, 'q=secret');
  r = await rows(v);
  assert(r.every((x) => x.type !== 'secret'), 'search finds no secret rows');
  await v.goto(`${BASE}/audit?category=secret`);
  await settled(v);
  r = await rows(v);
  assert(r.length === 0, 'a secret deep link shows nothing');
  assert(!(await v.isEnabled('#export')), 'a viewer cannot export');
  await vctx.close();
});

await actx.close();

await step('no console errors', async () => {
  assert(consoleErrors.length === 0, consoleErrors.join('\n'));
});

await browser.close();
console.log(`RESULTS ${JSON.stringify(results)}`);
