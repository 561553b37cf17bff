// capture — the team's own LAN capture: counters and pcap downloads.
import { h, clear, errorBox, fmtTime, fmtBytes, fmtNum, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { pageHead } from './common.js';

function stat(label, value, warn) {
  return h('div', { class: `stat${warn ? ' stat-warn' : ''}` }, h('div', { class: 'stat-value' }, value), h('div', { class: 'stat-label' }, label));
}

export async function render(ctx) {
  const counters = h('div');
  const files = h('div');
  add(ctx.el, pageHead(ctx, t('capture.title')), h('p', { class: 'muted' }, t('capture.intro')), counters, h('h2', {}, t('capture.files')), files);
  async function load() {
    let wire; let pcaps;
    try {
      [wire, pcaps] = await Promise.all([api.get(teamPath(ctx.team, 'wire')), api.get(teamPath(ctx.team, 'pcaps'))]);
    } catch (err) { fill(counters, errorBox(err)); clear(files); return; }
    if (!ctx.alive()) return;
    fill(counters, h('div', { class: 'stats' },
      stat(t('capture.packets'), fmtNum(wire.packets)), stat(t('capture.bytes'), fmtBytes(wire.bytes)),
      stat(t('capture.drops'), fmtNum((wire.kernel_drops || 0) + (wire.if_drops || 0)), (wire.kernel_drops || 0) + (wire.if_drops || 0) > 0),
      stat(t('capture.flows_active'), fmtNum(wire.flows_active)), stat(t('capture.flows_finished'), fmtNum(wire.flows_finished)),
      stat(t('capture.written'), fmtNum(wire.written))));
    pcaps = pcaps.slice().sort((a, b) => b.modified_ms - a.modified_ms);
    fill(files, pcaps.length ? h('table', { class: 'table pcaps' },
      h('thead', {}, h('tr', {}, h('th', {}, t('capture.file')), h('th', {}, t('capture.size')), h('th', {}, t('capture.modified')), h('th', {}))),
      h('tbody', {}, pcaps.map((p) => h('tr', {},
        h('td', {}, h('code', {}, p.name)), h('td', {}, fmtBytes(p.bytes)), h('td', {}, fmtTime(p.modified_ms)),
        h('td', {}, h('a', { class: 'btn btn-small', href: teamPath(ctx.team, 'pcaps', p.name), download: p.name }, t('capture.download')))))))
      : h('p', { class: 'muted' }, t('capture.none')));
  }
  await load();
  ctx.every(5000, load);
}
