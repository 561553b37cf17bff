// scoreboard — teams ranked, score over time per team, and time-to-detect
// per attack step (a cross: not detected).
import { h, errorBox, fmtNum, fmtClock, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { lineChart, barChart, PALETTE } from '../lib/charts.js';
import { throttle } from '../team/common.js';
import { axisName, AXES } from '../team/score.js';

export async function render(ctx) {
  const body = h('div');
  add(ctx.el, h('div', { class: 'page-head' }, h('h1', {}, t('scoreboard.title'))), body);
  async function load() {
    let board;
    try { board = await api.get('/api/scoreboard'); } catch (err) { fill(body, errorBox(err)); return; }
    const teams = board.map((b) => b.team);
    const [series, scores] = await Promise.all([
      Promise.all(teams.map((tm) => api.get(teamPath(tm, 'scores', 'series')).catch(() => []))),
      Promise.all(teams.map((tm) => api.get(teamPath(tm, 'score')).catch(() => null))),
    ]);
    if (!ctx.alive()) return;
    const ranked = board.map((b, i) => ({ ...b, color: PALETTE[i % PALETTE.length] })).sort((a, b) => b.total - a.total);
    const stepIds = [];
    for (const sc of scores) for (const st of (sc && sc.steps) || []) if (!stepIds.includes(st.step)) stepIds.push(st.step);
    const maxAll = Math.max(1, ...board.map((b) => b.max || 0));
    fill(body, 
      h('table', { class: 'table scoreboard' },
        h('thead', {}, h('tr', {}, h('th', {}, t('scoreboard.rank')), h('th', {}, t('scoreboard.team')), h('th', {}, t('scoreboard.total')),
          AXES.map((k) => h('th', {}, axisName(k))))),
        h('tbody', {}, ranked.map((b, i) => h('tr', { dataset: { team: b.team } },
          h('td', {}, String(i + 1)),
          h('td', {}, h('span', { class: 'swatch', style: `background:${b.color}` }), ' ', h('a', { href: `#/team/${b.team}/score` }, b.name)),
          h('td', { class: 'num-cell' }, h('strong', {}, fmtNum(b.total)), h('span', { class: 'muted' }, ` / ${fmtNum(b.max)}`)),
          AXES.map((k) => h('td', { class: 'num-cell' }, fmtNum(b.axes && b.axes[k] !== undefined ? (typeof b.axes[k] === 'object' ? b.axes[k].points : b.axes[k]) : null))))))),
      h('h2', {}, t('scoreboard.over_time')),
      h('div', { class: 'legend' }, board.map((b, i) => h('span', {}, h('span', { class: 'swatch', style: `background:${PALETTE[i % PALETTE.length]}` }), ' ', b.name))),
      lineChart({
        series: board.map((b, i) => ({ name: b.name, color: PALETTE[i % PALETTE.length], points: series[i].map((p) => [p.ts_ms, p.total]) })),
        yMax: maxAll, yFmt: fmtNum, xFmt: fmtClock, label: t('scoreboard.over_time'),
      }),
      h('h2', {}, t('scoreboard.ttd')),
      h('p', { class: 'muted small' }, t('scoreboard.ttd_hint')),
      stepIds.length ? barChart({
        groups: stepIds.map((sid) => ({
          label: sid,
          values: board.map((b, i) => {
            const st = ((scores[i] && scores[i].steps) || []).find((x) => x.step === sid);
            const v = st && st.detected && st.delay_ms !== null && st.delay_ms !== undefined ? st.delay_ms / 60000 : null;
            return { name: b.name, value: v, color: PALETTE[i % PALETTE.length] };
          }),
        })),
        yFmt: (v) => t('scoreboard.minutes', { n: fmtNum(v) }), label: t('scoreboard.ttd'), missingLabel: t('scoreboard.missed'),
      }) : h('p', { class: 'muted' }, t('score.no_steps')));
  }
  await load();
  const again = throttle(load, 5000);
  ctx.on((ev) => { if (ev.type === 'score') again(); });
  ctx.every(30000, load);
}
