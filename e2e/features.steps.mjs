// The detail and its diff, the tenant, deep links, the live view, exports and the
// download log, alerts, streams, first paint, and what a viewer may not see.

import fs from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import {
  env, BASE, SHOTS, results, assert, api, ingest, browser, expected, watch, rows, settled, login, step, ctx,
  page, axe, adminAxePage,
} from './harness.mjs';

const apage = await adminAxePage();

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
  // Witnessed: two of the policy's three witnesses are up; the browser checks their
  // cosignatures. A checkpoint just signed is witnessed within a second or so: reopen
  // the detail until it is (with a deadline).
  const deadline = Date.now() + 60000;
  let witnessed = '';
  for (;;) {
    await page.waitForFunction(() => {
      const m = document.querySelector('#witness-mark');
      return m && !m.textContent.startsWith('Checking');
    });
    witnessed = await page.textContent('#witness-mark');
    if (witnessed.includes('Witnessed by') || Date.now() > deadline) break;
    await page.keyboard.press('Escape');
    await page.waitForSelector('.detail', { state: 'hidden' });
    await page.click(`tbody tr[data-id="${deployId}"]`);
  }
  assert(witnessed.includes('Witnessed by 2 of 3 (w1, w2)'), `witnessed in the browser: ${witnessed}`);
  // The offline proof downloads as a C2SP tlog-proof file carrying the event.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('.detail a[download$=".tlog-proof"]:not([download*="-checkpoint-"])')]);
  const proofFile = fs.readFileSync(await dl.path(), 'utf8');
  assert(proofFile.startsWith('c2sp.org/tlog-proof@v1\nextra ') && proofFile.includes('\n\n'), `a tlog-proof file: ${proofFile.slice(0, 80)}`);
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
  expected.http = true;
  await page.goto(`${BASE}/audit?from=${day(150)}`);
  await page.waitForSelector('#download-period');
  await page.click('#download-period');
  await page.waitForSelector('#download-dialog[open]');
  assert((await page.inputValue('#dl-from')) === day(150), 'the dialog takes the period');
  await page.click('#download-dialog button.secondary');
  await page.waitForLoadState('networkidle');
  expected.http = false;
});

await step('alerts: rules, destinations with clear errors, a firing that links to its events', async () => {
  await page.goto(`${BASE}/audit`);
  await settled(page);
  await page.click('#alerts');
  await page.waitForSelector('#alert-rules tr[data-rule="failed_logins"]');
  const rules = await page.$$eval('#alert-rules tr', (trs) => trs.map((t) => t.dataset.rule));
  assert(['failed_logins', 'mass_deletion', 'permission_escalation', 'api_token_created', 'new_admin_ip', 'large_export'].every((r) => rules.includes(r)), `rules ${rules}`);
  // An internal address is refused, naming the field (the 400 is the answer expected).
  expected.http = true;
  await page.fill('#dest-name', 'chat');
  await page.selectOption('#dest-kind', 'slack');
  await page.fill('#dest-target', 'http://127.0.0.1:9/hook');
  await page.click('#dest-create');
  await page.waitForFunction(() => document.getElementById('alerts-error').textContent.includes('url'), null, { timeout: 60000 });
  expected.http = false;
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
    expected.http = true;
    await page.fill('#stream-name', 'siem');
    await page.fill('#stream-target', 'ftp://siem.example.com/in');
    await page.click('#stream-create');
    await page.waitForFunction(() => document.getElementById('streams-error').textContent.startsWith('url:'), null, { timeout: 60000 });
    expected.http = false;
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

await step('legal holds: placed with a reason, released with one', async () => {
  await page.goto(`${BASE}/audit`);
  await settled(page);
  await page.click('#holds');
  await page.waitForSelector('#holds-dialog[open] #hold-rows tr');
  // A query that does not parse is refused, naming the field (the 400 is expected).
  expected.http = true;
  await page.fill('#hold-query', 'created:>=nope');
  await page.fill('#hold-reason', 'x');
  await page.click('#hold-place');
  await page.waitForFunction(() => document.getElementById('holds-error').textContent.startsWith('query:'), null, { timeout: 60000 });
  expected.http = false;
  await page.fill('#hold-query', 'actor:dana@acme.com');
  await page.fill('#hold-reason', 'litigation 2024-17');
  await page.click('#hold-place');
  await page.waitForSelector('#hold-rows tr[data-active="true"]');
  await apage.goto(`${BASE}/audit`);
  await settled(apage);
  await apage.click('#holds');
  await apage.waitForSelector('#hold-rows tr[data-active]');
  await apage.waitForFunction(() => document.documentElement.dataset.pending === '0', null, { timeout: 60000 });
  const v = await axe(apage);
  assert(v.length === 0, `holds dialog: ${v.join('; ')}`);
  await apage.click('#holds-close');
  page.once('dialog', (d) => d.accept('case closed'));
  await page.click('#hold-rows button.release');
  await page.waitForSelector('#hold-rows tr[data-active="false"]');
  const row = await page.$eval('#hold-rows tr[data-active="false"]', (tr) => tr.textContent);
  assert(row.includes('case closed') && row.includes('actor:dana@acme.com') && row.includes('litigation 2024-17'), `the released hold: ${row}`);
  await page.click('#holds-close');
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
  expected.http = true;
  await v.click('button[type=submit]');
  await v.waitForFunction(() => document.querySelector('.form-error').textContent !== '');
  expected.http = false;
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
