// The Alerts dialog: rules with on/off and thresholds, destinations with "Send test"
// (a new webhook's signing secret shown once), recent firings linking to their events,
// and deliveries with their status (failed ones can be sent again). Changing needs an
// organization administrator; reading, the audit permission.

import { api, fmt, h, localTime, state } from './app.js';

const KINDS = [['webhook', 'Webhook (signed)'], ['slack', 'Slack'], ['discord', 'Discord'], ['email', 'E-mail']];

// The page's own address for a firing's link (whatever origin the server was told).
function pageLink(link) {
  try {
    const u = new URL(link);
    return u.pathname + u.search;
  } catch {
    return '/audit';
  }
}

export async function openAlerts() {
  const manage = state.me.permissions.manage;
  const err = h('p', { class: 'form-error', role: 'alert', id: 'alerts-error' });
  const said = h('p', { class: 'muted', role: 'status', id: 'alerts-status' });
  const rules = h('tbody', { id: 'alert-rules' });
  const dests = h('tbody', { id: 'alert-destinations' });
  const firings = h('ul', { class: 'firings', id: 'alert-firings', tabindex: 0, 'aria-label': 'Recent firings' });
  const deliveries = h('tbody', { id: 'alert-deliveries' });
  const fail = (e) => { err.textContent = e.field ? `${e.field}: ${e.message}.` : e.message; };

  const refresh = async () => {
    const [r, d] = await Promise.all([api('/alerts/rules'), api('/alerts/destinations')]);
    rules.replaceChildren(...r.rules.map((rule) => {
      const on = h('input', { type: 'checkbox', checked: rule.enabled, disabled: !manage, 'aria-label': `${rule.name} on` });
      const threshold = h('input', { type: 'number', min: 1, value: rule.threshold, disabled: !manage, class: 'threshold', 'aria-label': `${rule.name} threshold` });
      const save = async () => {
        err.textContent = '';
        try {
          await api(`/alerts/rules/${encodeURIComponent(rule.name)}`, { method: 'PUT', body: { enabled: on.checked, threshold: Number(threshold.value) } });
          said.textContent = `“${rule.name}” saved.`;
        } catch (e) { fail(e); }
      };
      on.addEventListener('change', save);
      threshold.addEventListener('change', save);
      return h('tr', { 'data-rule': rule.name },
        h('td', {}, on), h('td', {}, rule.name, rule.builtin ? '' : h('div', { class: 'mono muted' }, rule.query)),
        h('td', {}, threshold), h('td', {}, rule.window), h('td', {}, rule.group_by || '—'));
    }));
    dests.replaceChildren(...(d.destinations.length ? d.destinations.map((x) => h('tr', { 'data-id': x.id },
      h('td', {}, x.name), h('td', {}, x.kind), h('td', { class: 'mono' }, x.url || x.recipients.join(', ')),
      h('td', {}, x.enabled ? 'on' : 'disabled'),
      h('td', {}, manage ? h('button', { class: 'link test', onclick: async () => {
        err.textContent = '';
        try {
          const t = await api(`/alerts/destinations/${x.id}/test`, { method: 'POST' });
          said.textContent = `Test message queued for “${x.name}” (delivery ${t.id}).`;
          await refreshDeliveries();
        } catch (e) { fail(e); }
      } }, 'Send test') : '')))
      : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No destinations yet: firings are recorded in the log only.'))]));
    await refreshDeliveries();
  };

  const refreshDeliveries = async () => {
    let list = [];
    try {
      list = (await api('/alerts/deliveries')).deliveries;
    } catch (e) {
      deliveries.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, e.message)));
      firings.replaceChildren();
      return;
    }
    // One firing per distinct payload (a firing is delivered to each destination).
    const seen = new Set();
    const fired = list.filter((x) => x.rule !== 'test' && !seen.has(x.payload.link) && seen.add(x.payload.link));
    firings.replaceChildren(...(fired.length ? fired.slice(0, 20).map((x) => h('li', {},
      h('a', { href: pageLink(x.payload.link), class: 'firing' }, `${x.rule}: ${fmt(x.payload.count)} event${x.payload.count === 1 ? '' : 's'}`),
      h('span', { class: 'muted' }, ` ${localTime(x.created_at)}${x.payload.group ? ` · ${x.payload.group.by} ${x.payload.group.value}` : ''}`)))
      : [h('li', { class: 'muted' }, 'Nothing has fired.')]));
    deliveries.replaceChildren(...(list.length ? list.slice(0, 50).map((x) => h('tr', { 'data-id': x.id, 'data-status': x.status },
      h('td', {}, localTime(x.created_at)), h('td', {}, x.rule), h('td', {}, String(x.destination)),
      h('td', {}, h('span', { class: `badge badge-${x.status === 'delivered' ? 'done' : x.status === 'failed' ? 'failed' : 'pending'}` }, x.status),
        ` ${x.attempts} attempt${x.attempts === 1 ? '' : 's'}`, x.last_error ? h('div', { class: 'muted small' }, x.last_error) : ''),
      h('td', {}, manage && x.status === 'failed' ? h('button', { class: 'link retry', onclick: async () => {
        try { await api(`/alerts/deliveries/${x.id}/retry`, { method: 'POST' }); await refreshDeliveries(); } catch (e) { fail(e); }
      } }, 'Send again') : '')))
      : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No deliveries yet.'))]));
  };

  const name = h('input', { id: 'dest-name', required: true });
  const kind = h('select', { id: 'dest-kind' }, ...KINDS.map(([v, l]) => h('option', { value: v }, l)));
  const target = h('input', { id: 'dest-target', placeholder: 'https://hooks.example.com/…' });
  kind.addEventListener('change', () => { target.placeholder = kind.value === 'email' ? 'a@example.com, b@example.com' : 'https://hooks.example.com/…'; });
  const secret = h('p', { class: 'secret', id: 'dest-secret', hidden: true });
  const form = manage ? h('form', { class: 'sched-form', onsubmit: async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    secret.hidden = true;
    const body = { name: name.value.trim(), kind: kind.value };
    if (kind.value === 'email') body.recipients = target.value.split(',').map((x) => x.trim()).filter(Boolean);
    else body.url = target.value.trim();
    try {
      const made = await api('/alerts/destinations', { method: 'POST', body });
      name.value = '';
      target.value = '';
      if (made.secret) {
        secret.replaceChildren('Signing secret (shown only now): ', h('code', {}, made.secret));
        secret.hidden = false;
      }
      said.textContent = `Destination “${body.name}” added.`;
      await refresh();
    } catch (e) { fail(e); }
  } },
  h('h3', {}, 'New destination'),
  h('label', {}, 'Name ', name), h('label', {}, 'Kind ', kind), h('label', {}, 'URL or recipients ', target),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', id: 'dest-create' }, 'Add'))) : null;

  const table = (heads, body) => h('div', { class: 'sched-table', tabindex: 0 }, h('table', { class: 'diff' }, h('thead', {}, h('tr', {}, ...heads.map((t) => h('th', {}, t)))), body));
  const dialog = h('dialog', { class: 'download-dialog schedules-dialog alerts-dialog', id: 'alerts-dialog', 'aria-labelledby': 'alerts-title' },
    h('h2', { id: 'alerts-title' }, 'Alerts'),
    h('p', {}, 'Trail checks every event as it is stored and tells these destinations when a rule fires; each firing is also recorded in the log.'),
    h('h3', {}, 'Rules'), table(['On', 'Rule', 'Threshold', 'Window', 'Grouped by'], rules),
    h('h3', {}, 'Recent firings'), firings,
    h('h3', {}, 'Destinations'), table(['Name', 'Kind', 'Where', 'State', 'Action'], dests),
    said, err, secret, form,
    h('h3', {}, 'Deliveries'), table(['Made', 'Rule', 'Destination', 'Status', 'Action'], deliveries),
    h('div', { class: 'buttons' }, h('button', { type: 'button', class: 'secondary', id: 'alerts-close', onclick: () => dialog.close() }, 'Close')));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  try { await refresh(); } catch (e) { fail(e); }
}
