// score — the team's score with the reason for every point, per axis, the
// steps it detected or missed, and its score over time.
import { h, errorBox, fmtNum, fmtDuration, fmtClock, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { lineChart } from '../lib/charts.js';
import { pageHead, throttle } from './common.js';

export function axisName(k) {
  return { detection: t('axis.detection'), availability: t('axis.availability'), reports: t('axis.reports'), injects: t('axis.injects') }[k] || k;
}

export const AXES = ['detection', 'availability', 'reports', 'injects'];

function pct(v) { return v === null || v === undefined ? '—' : `${Math.round(v * 1000) / 10}%`; }

export function axisBlock(key, ax) {
  const frac = ax.max ? Math.max(0, Math.min(1, ax.points / ax.max)) : 0;
  return h('section', { class: 'card axis', dataset: { axis: key } },
    h('header', {}, h('h2', {}, axisName(key)), h('span', { class: 'axis-points' }, `${fmtNum(ax.points)} / ${fmtNum(ax.max)}`)),
    h('div', { class: 'meter' }, h('span', { style: `width:${frac * 100}%` })),
    (ax.items || []).length ? h('ul', { class: 'reasons' }, ax.items.map((it) => h('li', {},
      h('span', { class: `pts ${it.points < 0 ? 'neg' : ''}` }, `${it.points > 0 ? '+' : ''}${fmtNum(it.points)}`), ' ', reasonText(it.reason))))
      : h('p', { class: 'muted small' }, t('score.no_items')));
}

export function stepsTable(steps, full) {
  if (!steps || !steps.length) return h('p', { class: 'muted' }, t('score.no_steps'));
  return h('table', { class: 'table steps' },
    h('thead', {}, h('tr', {}, h('th', {}, t('score.step')), full ? h('th', {}, t('score.outcome')) : null,
      h('th', {}, t('score.detected')), h('th', {}, t('score.finding')), full ? h('th', {}, t('score.delay')) : null,
      h('th', {}, t('score.points')))),
    h('tbody', {}, steps.map((st) => h('tr', { class: st.detected ? '' : 'missed' },
      h('td', {}, st.step), full ? h('td', {}, st.outcome || '') : null,
      h('td', {}, st.detected ? badge(t('score.yes'), 'ok') : badge(t('score.no'), 'bad')),
      h('td', {}, st.finding ?? '—'), full ? h('td', {}, st.delay_ms === null || st.delay_ms === undefined ? '—' : fmtDuration(st.delay_ms)) : null,
      h('td', {}, st.max !== undefined ? `${fmtNum(st.points)} / ${fmtNum(st.max)}` : fmtNum(st.points))))));
}

export async function render(ctx) {
  const body = h('div');
  add(ctx.el, pageHead(ctx, t('score.title')), body);
  async function load() {
    let sc; let series;
    try {
      [sc, series] = await Promise.all([api.get(teamPath(ctx.team, 'score')), api.get(teamPath(ctx.team, 'scores', 'series')).catch(() => [])]);
    } catch (err) { fill(body, errorBox(err)); return; }
    if (!ctx.alive()) return;
    const finished = ctx.exercise && ctx.exercise.state === 'finished';
    const fp = sc.false_positives || { count: 0, points: 0 };
    fill(body, 
      h('div', { class: 'score-head card' },
        h('div', { class: 'score-total' }, h('span', { class: 'big' }, fmtNum(sc.total)), h('span', { class: 'muted' }, ` / ${fmtNum(sc.max)}`)),
        h('dl', { class: 'kv' },
          h('dt', {}, t('score.precision')), h('dd', {}, pct(sc.precision)),
          h('dt', {}, t('score.recall')), h('dd', {}, pct(sc.recall)),
          h('dt', {}, t('score.false_positives')), h('dd', {}, t('score.fp_value', { count: fp.count, points: fmtNum(fp.points) })))),
      h('div', { class: 'axes' }, AXES.filter((k) => sc.axes && sc.axes[k]).map((k) => axisBlock(k, sc.axes[k]))),
      h('h2', {}, t('score.over_time')),
      series.length ? lineChart({ series: [{ name: t('score.total'), points: series.map((p) => [p.ts_ms, p.total]) }], yMax: sc.max, yFmt: fmtNum, xFmt: fmtClock, label: t('score.over_time') })
        : h('p', { class: 'muted' }, t('score.no_series')),
      h('h2', {}, t('score.steps')), stepsTable(sc.steps, finished),
      (sc.reasons || []).length ? [h('h2', {}, t('score.reasons')), h('ul', { class: 'reasons' }, sc.reasons.map((r) => h('li', {}, r)))] : null);
  }
  await load();
  const again = throttle(load, 3000);
  ctx.on((ev) => { if (ev.type === 'score' && (!ev.team || ev.team === ctx.team)) again(); });
  ctx.every(30000, load);
}

// The server's reasons start with their signed points ("+8.0 detection of
// ..."), which the list shows in its own column already.
function reasonText(r) {
  return String(r || '').replace(/^[+-]?\d+(\.\d+)?\s+/, '');
}
