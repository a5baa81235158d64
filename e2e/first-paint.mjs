// Measures how fast /audit shows its first page on a running Trail (for BENCHMARKS.md):
// logs in as EMAIL with the one-time password OTP, sets a password, then loads the page
// RUNS times and prints first-contentful-paint and "rows visible" times.
import { chromium } from 'playwright-core';

const { BASE, EMAIL, OTP } = process.env;
const RUNS = Number(process.env.RUNS || 10);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
const page = await ctx.newPage();
await page.goto(`${BASE}/audit`);
await page.fill('#email', EMAIL);
await page.fill('#password', OTP);
await page.click('button[type=submit]');
await page.waitForSelector('#current');
await page.fill('#current', OTP);
await page.fill('#new', 'first paint password');
await page.click('button[type=submit]');
await page.waitForSelector('tbody tr[data-id]');
const fcp = [];
const rows = [];
for (let i = 0; i < RUNS; i++) {
  const p = await ctx.newPage();
  const t = Date.now();
  await p.goto(`${BASE}/audit`);
  await p.waitForSelector('tbody tr[data-id]');
  rows.push(Date.now() - t);
  fcp.push(await p.evaluate(() => Math.round(performance.getEntriesByType('paint').find((x) => x.name === 'first-contentful-paint').startTime)));
  await p.close();
}
const med = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(JSON.stringify({ runs: RUNS, fcp_ms: fcp, rows_visible_ms: rows, fcp_median: med(fcp), rows_median: med(rows) }));
await browser.close();
