// Exports, downloads and scheduled exports of the audit page: the export menu, the
// "Download log" dialog, files made as jobs and handed to the browser's own download,
// and the Schedules dialog of organization administrators.

import { API, api, filterParams, fmt, h, localTime, queryParams, state } from './app.js';

// "Download log": any period as one CSV or JSON Lines file, archived and online events
// merged in time order (online queries reach only the recent window).
export function downloadButton() {
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
export let openDownload = () => {};

export function exportMenu() {
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

export async function openSchedules() {
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
