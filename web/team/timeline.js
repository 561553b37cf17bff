// timeline — the team's own events on one chart (findings, injects,
// checks, reports, responses, reviews), updated live.  Attacker steps are
// never part of a team's view.
import { h, errorBox, fmtTime, fmtClock, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { laneChart, PALETTE } from '../lib/charts.js';
import { pageHead } from './common.js';

export function eventLanes() {
  return [
    { key: 'finding', label: t('event.finding') }, { key: 'inject', label: t('event.inject') },
    { key: 'response', label: t('event.response') }, { key: 'report', label: t('event.report') },
    { key: 'review', label: t('event.review') }, { key: 'check', label: t('event.check') },
  ];
}

export async function render(ctx) {
  const chart = h('div', { class: 'chart-box' });
  const list = h('ol', { class: 'event-list' });
  add(ctx.el, pageHead(ctx, t('timeline.title')), chart, h('h2', {}, t('timeline.events')), list);
  const events = [];
  let since = 0;
  const lanes = eventLanes();
  function draw() {
    const start = ctx.exercise && ctx.exercise.started_ms;
    fill(chart, events.length ? laneChart({
      lanes,
      items: events.map((e) => ({ lane: e.type, x: e.ts_ms, title: `${fmtClock(e.ts_ms)} ${e.summary}`, color: PALETTE[lanes.findIndex((l) => l.key === e.type) % PALETTE.length] })),
      xMin: start || undefined, xMax: Math.max(Date.now(), ...events.map((e) => e.ts_ms)), xFmt: fmtClock, label: t('timeline.title'),
    }) : h('p', { class: 'muted' }, t('timeline.none')));
    fill(list, events.slice().reverse().slice(0, 200).map((e) => h('li', { dataset: { type: e.type } },
      h('span', { class: 'muted' }, fmtTime(e.ts_ms)), ' ', h('strong', {}, (lanes.find((l) => l.key === e.type) || { label: e.type }).label), ' ', e.summary)));
  }
  async function load() {
    let fresh;
    try { fresh = await api.get(`${teamPath(ctx.team, 'events')}?since=${since}`); } catch (err) { fill(chart, errorBox(err)); return; }
    if (!ctx.alive()) return;
    for (const e of fresh) { if (e.seq > since) { events.push(e); since = e.seq; } }
    draw();
  }
  await load();
  // Any event of this team may have added a timeline entry: fetch the new ones.
  let pending = null;
  ctx.on((ev) => {
    if (ev.team && ev.team !== ctx.team) return;
    clearTimeout(pending);
    pending = setTimeout(load, 500);
  });
  ctx.cleanup(() => clearTimeout(pending));
  ctx.every(60000, draw);
}
