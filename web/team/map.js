// map — the team's range: segments with their hosts (addresses, guest and
// agent state, services) and the service checks; refreshed live.
import { h, errorBox, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { pageHead, guestBadge, checkBadge, throttle, guestUp } from './common.js';

function hostCard(ctx, host, segment) {
  const addrs = host.addresses || [];
  const here = addrs.filter((a) => a.segment === segment);
  const elsewhere = addrs.filter((a) => a.segment !== segment);
  const canConsole = ctx.user.role !== 'observer';
  return h('article', { class: `host-card state-${host.state}`, dataset: { host: host.name } },
    h('header', {},
      h('strong', { class: 'host-name' }, host.name),
      h('span', { class: 'muted' }, host.role || ''),
      guestBadge(host.state),
      host.agent ? badge(t('map.agent_up'), 'ok') : badge(t('map.agent_down'), 'warn')),
    h('ul', { class: 'addr' },
      here.map((a) => h('li', {}, h('code', {}, a.address))),
      elsewhere.map((a) => h('li', { class: 'muted' }, t('map.also_on', { segment: a.segment }), ' ', h('code', {}, a.address)))),
    (host.services || []).length
      ? h('div', { class: 'services' }, (host.services || []).map((sv) => h('span', { class: 'chip' }, `${sv.name} ${sv.proto}/${sv.port}`)))
      : null,
    host.image ? h('div', { class: 'muted small' }, t('map.image'), ' ', host.image) : null,
    canConsole ? h('a', { class: 'btn btn-small', href: `#/team/${ctx.team}/console/${encodeURIComponent(host.name)}` }, t('map.console')) : null);
}

function checksTable(checks) {
  if (!checks.length) return h('p', { class: 'muted' }, t('map.no_checks'));
  return h('table', { class: 'table' },
    h('thead', {}, h('tr', {},
      h('th', {}, t('map.check')), h('th', {}, t('map.check_type')), h('th', {}, t('map.check_path')),
      h('th', {}, t('map.check_state')), h('th', {}, t('map.check_sla')), h('th', {}, t('map.check_detail')))),
    h('tbody', {}, checks.map((c) => h('tr', {},
      h('td', {}, c.id), h('td', {}, c.type), h('td', {}, `${c.from || ''} → ${c.target || ''}`),
      h('td', {}, checkBadge(c)),
      h('td', {}, t('map.check_ratio', { ok: c.ok ?? 0, probes: c.probes ?? 0, sla: c.sla ?? '—' })),
      h('td', { class: 'small' }, c.last_detail || '')))));
}

export async function render(ctx) {
  const body = h('div');
  add(ctx.el, pageHead(ctx, t('map.title')), body);
  async function load() {
    let map;
    try { map = await api.get(teamPath(ctx.team, 'map')); } catch (err) { fill(body, errorBox(err)); return; }
    if (!ctx.alive()) return;
    const hosts = map.hosts || [];
    const segs = (map.segments || []).map((seg) => h('section', { class: 'segment', dataset: { segment: seg.name } },
      h('header', { class: 'segment-head' },
        h('h2', {}, seg.name), h('code', {}, seg.cidr || ''), seg.role ? h('span', { class: 'chip' }, seg.role) : null),
      h('div', { class: 'hosts' },
        hosts.filter((ho) => (ho.addresses || []).some((a) => a.segment === seg.name)).map((ho) => hostCard(ctx, ho, seg.name)))));
    const loose = hosts.filter((ho) => !(ho.addresses || []).length);
    const down = hosts.filter((ho) => !guestUp(ho.state));
    fill(body, 
      down.length ? h('div', { class: 'alert alert-warn' }, t('map.hosts_down', { hosts: down.map((d) => d.name).join(', ') })) : null,
      h('div', { class: 'range-map' }, segs,
        loose.length ? h('section', { class: 'segment' }, h('header', { class: 'segment-head' }, h('h2', {}, t('map.unattached'))),
          h('div', { class: 'hosts' }, loose.map((ho) => hostCard(ctx, ho, null)))) : null),
      h('h2', {}, t('map.checks')), checksTable(map.checks || []));
  }
  await load();
  const again = throttle(load, 2000);
  ctx.on((ev) => { if ((ev.type === 'guest' || ev.type === 'check') && (!ev.team || ev.team === ctx.team)) again(); });
  ctx.every(15000, load);
}
