// The Legal holds dialog (administrators): the organization's holds, active and
// released, with who placed or released each and why; place one on the whole
// organization or on a query, release one with a reason. Retention keeps what an
// active hold covers.

import { api, h, localTime } from './app.js';

export async function openHolds() {
  const err = h('p', { class: 'form-error', role: 'alert', id: 'holds-error' });
  const said = h('p', { class: 'muted', role: 'status', id: 'holds-status' });
  const body = h('tbody', { id: 'hold-rows' });
  const fail = (e) => { err.textContent = e.field ? `${e.field}: ${e.message}.` : e.message; };

  const refresh = async () => {
    const list = (await api('/holds')).holds;
    body.replaceChildren(...(list.length ? list.map((x) => h('tr', { 'data-id': x.id, 'data-active': String(x.active) },
      h('td', {}, x.query ? h('span', { class: 'mono' }, x.query) : 'Every event'),
      h('td', {}, x.reason, h('div', { class: 'muted small' }, `${x.placed_by} · ${localTime(x.placed_at)}`)),
      h('td', {}, x.active ? h('span', { class: 'badge badge-pending' }, 'holding')
        : [h('span', { class: 'badge badge-done' }, 'released'), h('div', { class: 'muted small' }, `${x.release_reason} · ${x.released_by} · ${localTime(x.released_at)}`)]),
      h('td', {}, x.active ? h('button', { class: 'link release', onclick: async () => {
        err.textContent = '';
        const reason = window.prompt('Why is this hold released? (recorded)');
        if (reason === null) return;
        try {
          await api(`/holds/${x.id}/release`, { method: 'POST', body: { reason } });
          said.textContent = 'Hold released.';
          await refresh();
        } catch (e) { fail(e); }
      } }, 'Release') : '')))
      : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No legal holds.'))]));
  };

  const query = h('input', { id: 'hold-query', placeholder: 'empty: every event; or e.g. actor:ann@acme.com' });
  const reason = h('input', { id: 'hold-reason', required: true, placeholder: 'e.g. litigation 2024-17' });
  const form = h('form', { class: 'sched-form', onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const b = { reason: reason.value };
    if (query.value.trim()) b.query = query.value.trim();
    try {
      await api('/holds', { method: 'POST', body: b });
      reason.value = '';
      query.value = '';
      said.textContent = 'Hold placed: retention keeps what it covers.';
      await refresh();
    } catch (e) { fail(e); }
  } },
  h('h3', {}, 'Place a hold'),
  h('label', {}, 'Events ', query), h('label', {}, 'Reason ', reason),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', id: 'hold-place' }, 'Place hold')));

  const table = h('div', { class: 'sched-table', tabindex: 0 }, h('table', { class: 'diff' },
    h('thead', {}, h('tr', {}, ...['Holds', 'Reason', 'State', 'Action'].map((t) => h('th', {}, t)))), body));
  const dialog = h('dialog', { class: 'download-dialog schedules-dialog', id: 'holds-dialog', 'aria-labelledby': 'holds-title' },
    h('h2', { id: 'holds-title' }, 'Legal holds'),
    h('p', {}, 'While a hold is active, retention neither archives nor deletes the events it covers. Placing and releasing are recorded with their reasons.'),
    table, said, err, form,
    h('div', { class: 'buttons' }, h('button', { type: 'button', class: 'secondary', id: 'holds-close', onclick: () => dialog.close() }, 'Close')));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  try { await refresh(); } catch (e) { fail(e); }
}
