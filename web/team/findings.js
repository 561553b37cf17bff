// findings — the findings form (hosts, indicators, flow, technique,
// description, action) and the team's findings as they are stored.
// Instructors may label a finding (duplicate, benign, unscripted).
import { h, errorBox, errorText, fmtTime, splitList, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { pageHead, throttle } from './common.js';

function localNow() {
  const d = new Date(Date.now() - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function field(label, input, hint) {
  return h('label', {}, label, input, hint ? h('span', { class: 'hint' }, hint) : null);
}

function labelWord(l) {
  return { duplicate: t('findings.label_duplicate'), benign: t('findings.label_benign'), unscripted: t('findings.label_unscripted') }[l] || '';
}

function buildForm(ctx, hosts, onStored) {
  const f = {
    detected: h('input', { type: 'datetime-local', name: 'detected', value: localNow() }),
    hosts: h('input', { name: 'hosts', list: 'host-names', placeholder: 'pc1, 198.18.2.100' }),
    ips: h('input', { name: 'ips' }), domains: h('input', { name: 'domains' }), urls: h('input', { name: 'urls' }),
    hashes: h('input', { name: 'hashes' }), accounts: h('input', { name: 'accounts' }),
    proto: h('select', { name: 'proto' }, h('option', { value: '' }, '—'), ['tcp', 'udp', 'icmp'].map((p) => h('option', { value: p }, p))),
    src: h('input', { name: 'src', placeholder: '198.18.0.10' }), sport: h('input', { name: 'sport', type: 'number', min: 0, max: 65535 }),
    dst: h('input', { name: 'dst' }), dport: h('input', { name: 'dport', type: 'number', min: 0, max: 65535 }),
    community_id: h('input', { name: 'community_id', placeholder: '1:…' }),
    technique: h('input', { name: 'technique', placeholder: 'T1071.001' }),
    description: h('textarea', { name: 'description', rows: 3, required: true }),
    action: h('textarea', { name: 'action', rows: 2 }),
  };
  const msg = h('div', { class: 'form-msg', role: 'status' });
  const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, t('findings.submit'));
  const form = h('form', {
    class: 'card form-grid findings-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { description: f.description.value.trim() };
      if (f.detected.value) body.detected = new Date(f.detected.value).getTime();
      const hostList = splitList(f.hosts.value);
      if (hostList.length) body.hosts = hostList;
      const ind = {};
      for (const k of ['ips', 'domains', 'urls', 'hashes', 'accounts']) { const v = splitList(f[k].value); if (v.length) ind[k] = v; }
      if (Object.keys(ind).length) body.indicators = ind;
      const flow = {};
      if (f.proto.value) flow.proto = f.proto.value;
      if (f.src.value.trim()) flow.src = f.src.value.trim();
      if (f.dst.value.trim()) flow.dst = f.dst.value.trim();
      if (f.sport.value) flow.sport = Number(f.sport.value);
      if (f.dport.value) flow.dport = Number(f.dport.value);
      if (Object.keys(flow).length) body.flow = flow;
      if (f.community_id.value.trim()) body.community_id = f.community_id.value.trim();
      if (f.technique.value.trim()) body.technique = f.technique.value.trim();
      if (f.action.value.trim()) body.action = f.action.value.trim();
      submit.disabled = true;
      msg.className = 'form-msg'; msg.textContent = t('findings.sending');
      try {
        const stored = await api.post(teamPath(ctx.team, 'findings'), body);
        msg.className = 'form-msg alert alert-ok';
        msg.textContent = t('findings.stored', { id: stored.id });
        form.reset();
        f.detected.value = localNow();
        onStored();
      } catch (err) {
        msg.className = 'form-msg alert alert-error';
        msg.textContent = errorText(err);
      } finally { submit.disabled = false; }
    },
  },
  h('datalist', { id: 'host-names' }, hosts.map((x) => h('option', { value: x }))),
  h('h2', { class: 'span2' }, t('findings.new')),
  field(t('findings.detected'), f.detected, t('findings.detected_hint')),
  field(t('findings.hosts'), f.hosts, t('findings.list_hint')),
  h('fieldset', { class: 'span2' }, h('legend', {}, t('findings.indicators')),
    h('div', { class: 'form-grid' },
      field(t('findings.ips'), f.ips), field(t('findings.domains'), f.domains), field(t('findings.urls'), f.urls),
      field(t('findings.hashes'), f.hashes), field(t('findings.accounts'), f.accounts))),
  h('fieldset', { class: 'span2' }, h('legend', {}, t('findings.flow')),
    h('div', { class: 'flow-grid' },
      field(t('findings.proto'), f.proto), field(t('findings.src'), f.src), field(t('findings.sport'), f.sport),
      field(t('findings.dst'), f.dst), field(t('findings.dport'), f.dport))),
  field(t('findings.community_id'), f.community_id),
  field(t('findings.technique'), f.technique, t('findings.technique_hint')),
  h('label', { class: 'span2' }, t('findings.description'), f.description),
  h('label', { class: 'span2' }, t('findings.action'), f.action),
  h('div', { class: 'span2 form-foot' }, submit, msg));
  return form;
}

function summary(fd) {
  const parts = [];
  if (fd.hosts && fd.hosts.length) parts.push(fd.hosts.join(', '));
  const ind = fd.indicators || {};
  for (const k of ['ips', 'domains', 'urls', 'hashes', 'accounts']) if (ind[k] && ind[k].length) parts.push(ind[k].join(', '));
  if (fd.flow && (fd.flow.src || fd.flow.dst)) parts.push(`${fd.flow.proto || ''} ${fd.flow.src || '*'}:${fd.flow.sport ?? '*'} → ${fd.flow.dst || '*'}:${fd.flow.dport ?? '*'}`);
  if (fd.community_id) parts.push(fd.community_id);
  return parts.join(' · ');
}

function labelControl(ctx, fd, reload) {
  if (ctx.user.role !== 'instructor') return fd.label ? badge(labelWord(fd.label), 'warn') : '';
  const sel = h('select', {
    'aria-label': t('findings.label'),
    onchange: async () => {
      try { await api.patch(`/api/findings/${encodeURIComponent(fd.id)}`, { label: sel.value }); reload(); } catch (err) { alert(errorText(err)); }
    },
  },
  h('option', { value: 'none' }, t('findings.label_none')),
  h('option', { value: 'duplicate', selected: fd.label === 'duplicate' }, t('findings.label_duplicate')),
  h('option', { value: 'benign', selected: fd.label === 'benign' }, t('findings.label_benign')),
  h('option', { value: 'unscripted', selected: fd.label === 'unscripted' }, t('findings.label_unscripted')));
  return sel;
}

export async function render(ctx) {
  const list = h('div');
  let hosts = [];
  try {
    const map = await api.get(teamPath(ctx.team, 'map'));
    hosts = (map.hosts || []).map((x) => x.name);
  } catch (err) { add(ctx.el, pageHead(ctx, t('findings.title')), errorBox(err)); return; }
  async function load() {
    let items;
    try { items = await api.get(teamPath(ctx.team, 'findings')); } catch (err) { fill(list, errorBox(err)); return; }
    if (!ctx.alive()) return;
    items = items.slice().sort((a, b) => b.id - a.id);
    fill(list, items.length ? h('table', { class: 'table findings-list' },
      h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, t('findings.detected')), h('th', {}, t('findings.what')),
        h('th', {}, t('findings.technique')), h('th', {}, t('findings.description')), h('th', {}, t('findings.label')))),
      h('tbody', {}, items.map((fd) => h('tr', { dataset: { finding: fd.id } },
        h('td', {}, fd.id), h('td', {}, fmtTime(fd.detected_ms ?? fd.submitted_ms)), h('td', { class: 'small' }, summary(fd)),
        h('td', {}, fd.technique || ''),
        h('td', {}, fd.description, fd.action ? h('div', { class: 'muted small' }, t('findings.action'), ': ', fd.action) : null),
        h('td', {}, labelControl(ctx, fd, load))))))
      : h('p', { class: 'muted' }, t('findings.none')));
  }
  const canWrite = ctx.user.role === 'member' || ctx.user.role === 'instructor';
  add(ctx.el, pageHead(ctx, t('findings.title')),
    canWrite ? buildForm(ctx, hosts, load) : null,
    h('h2', {}, t('findings.list')), list);
  await load();
  const again = throttle(load, 1500);
  ctx.on((ev) => { if (ev.type === 'finding' && (!ev.team || ev.team === ctx.team)) again(); });
}
