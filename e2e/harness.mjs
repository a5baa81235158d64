// The browser test's harness: the environment `crates/trail/tests/it/e2e.rs` passes,
// Chromium driven by playwright-core, the API as the test's own client, and the waits
// and checks every step uses. The steps are in `list.steps.mjs` and
// `features.steps.mjs`; `audit.test.mjs` runs them in order.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';


const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
export const BASE = env('BASE');
export const SHOTS = process.env.SCREENSHOTS || '';
export const results = {};
export const consoleErrors = [];

export function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

export async function api(pathAndQuery, key, opts = {}) {
  const r = await fetch(BASE + pathAndQuery, { ...opts, headers: { authorization: `Bearer ${key}`, ...(opts.headers || {}) } });
  const text = await r.text();
  if (!r.ok) throw new Error(`${pathAndQuery}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function ingest(event) {
  const r = await api('/api/v1/events', env('INGEST_KEY'), { method: 'POST', body: JSON.stringify(event) });
  return r.events[0].id;
}

export const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});

// `http` is set while a step provokes an HTTP error on purpose (the browser logs those).
export const expected = { http: false };

export function watch(page, who) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expected.http && m.text().includes('status of 400')) return;
    consoleErrors.push(`${who}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${who}: ${e.message}`));
}

export async function rows(page) {
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
export async function settled(page, urlPart) {
  if (urlPart) await page.waitForURL((u) => u.toString().includes(urlPart), { timeout: 60000 });
  // The page marks itself idle once no request or typed filter is pending.
  await page.waitForFunction(() => {
    const line = document.querySelector('.status-line');
    const loading = document.querySelector('td.state') && document.querySelector('td.state').textContent.startsWith('Loading');
    const idle = document.documentElement.dataset.pending === '0';
    return idle && line && !loading && (document.querySelector('tbody tr[data-id]') || document.querySelector('td.state'));
  }, null, { timeout: 60000 });
}

export async function login(page, email, otp, password) {
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

export const step = async (name, fn) => {
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

export const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
export const page = await ctx.newPage();

// Waits until the timeline shows the current filters.
export async function timelined(page) {
  await settled(page);
  await page.waitForFunction(() => {
    const t = document.getElementById('timeline');
    return t && t.dataset.ready === 'true' && document.documentElement.dataset.pending === '0';
  }, null, { timeout: 60000 });
}

// Waits until the Type checks show counts for the current period.
export async function counted(page) {
  // The panel may not be drawn yet right after a navigation.
  await page.waitForFunction(() => {
    const box = document.getElementById('f-category');
    return box && box.dataset.counted === 'true';
  }, null, { timeout: 60000 });
  await settled(page);
}

// Runs axe-core on the page as it is; returns the violations.
export async function axe(page) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return r.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.length} × ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

// Whether an element is drawn inside the viewport (not clipped off either side).
export async function onScreen(page, selector) {
  return page.$eval(selector, (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5;
  });
}

// A second context for axe-core, injected as a script: a context of its own lets it
// past the page's CSP (the main context keeps the CSP in force). Made once, after the
// first step has set the administrator's password.
let axeContext = null;
export async function adminAxePage() {
  if (axeContext) return axeContext.page;
  const actx = await browser.newContext({ viewport: { width: 1440, height: 900 }, bypassCSP: true });
  const apage = await actx.newPage();
  watch(apage, 'a11y');
  await apage.goto(`${BASE}/audit`);
  await apage.fill('#email', env('ADMIN_EMAIL'));
  await apage.fill('#password', 'a long admin password');
  await apage.click('button[type=submit]');
  await apage.waitForSelector('tbody');
  axeContext = { actx, page: apage };
  return apage;
}

export async function closeAdminAxePage() {
  if (axeContext) await axeContext.actx.close();
}

