// aar — the after-action report: per team (score with reasons, every step
// detected or missed with the team's own analysis of the cause, reports,
// injects) and an anonymised aggregate for sharing.  Printable (the
// browser's print to PDF) and exportable as JSON.
import { h, errorBox, fmtNum, fmtTime, fmtDuration, download, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { axisBlock, axisName, AXES } from '../team/score.js';
import { causeWord } from '../team/analysis.js';
import { reportStateWord, reportStateKind } from '../team/phases.js';
import { teamName } from './common.js';

async function gather(team, timeline) {
  const get = (...p) => api.get(teamPath(team, ...p)).catch(() => null);
  const [score, reports, inbox, findings, analysis] = await Promise.all([get('score'), get('reports'), get('inbox'), get('findings'), get('analysis')]);
  const tl = ((timeline && timeline.teams) || []).find((x) => x.team === team) || null;
  return { team, score, reports: reports || [], inbox: inbox || [], findings: findings || [], analysis: (analysis && analysis.items) || [], timeline: tl };
}

function median(xs) {
  if (!xs.length) return null;
  const s = xs.slice().sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function teamReport(ex, d) {
  const sc = d.score || { total: null, max: null, axes: {}, steps: [] };
  const steps = (d.timeline && d.timeline.steps) || [];
  const cause = Object.fromEntries(d.analysis.map((a) => [a.step, a]));
  return h('article', { class: 'aar-team' },
    h('h2', {}, teamName(ex, d.team)),
    h('p', { class: 'score-total' }, h('span', { class: 'big' }, fmtNum(sc.total)), h('span', { class: 'muted' }, ` / ${fmtNum(sc.max)}`),
      ' · ', t('aar.findings_count', { n: d.findings.length })),
    h('div', { class: 'axes' }, AXES.filter((k) => sc.axes && sc.axes[k]).map((k) => axisBlock(k, sc.axes[k]))),
    h('h3', {}, t('aar.steps')),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, t('score.step')), h('th', {}, t('controls.action')), h('th', {}, t('controls.target')),
        h('th', {}, t('score.detected')), h('th', {}, t('score.delay')), h('th', {}, t('score.points')), h('th', {}, t('analysis.cause')), h('th', {}, t('analysis.what')))),
      h('tbody', {}, (sc.steps || []).map((st) => {
        const info = steps.find((x) => x.id === st.step) || {};
        const a = cause[st.step] || {};
        return h('tr', { class: st.detected ? '' : 'missed' },
          h('td', {}, st.step), h('td', {}, info.action || ''), h('td', {}, info.target || ''),
          h('td', {}, st.detected ? badge(t('score.yes'), 'ok') : badge(t('score.no'), 'bad')),
          h('td', {}, st.delay_ms === null || st.delay_ms === undefined ? '—' : fmtDuration(st.delay_ms)),
          h('td', {}, `${fmtNum(st.points)}${st.max !== undefined ? ` / ${fmtNum(st.max)}` : ''}`),
          h('td', {}, st.detected ? '' : causeWord(a.cause)),
          h('td', { class: 'small' }, st.detected ? '' : [a.what, a.improve].filter(Boolean).join(' — ')));
      }))),
    h('h3', {}, t('aar.reports')),
    d.reports.length ? h('ul', {}, d.reports.map((r) => h('li', {}, r.title, ' ', badge(reportStateWord(r.state), reportStateKind(r.state)), ' ', h('span', { class: 'muted small' }, fmtTime(r.updated_ms)))))
      : h('p', { class: 'muted' }, t('report.none')),
    h('h3', {}, t('aar.injects')),
    d.inbox.length ? h('ul', {}, d.inbox.map((inj) => {
      const first = (inj.responses || []).slice().sort((a, b) => a.ts_ms - b.ts_ms)[0];
      const pts = (inj.responses || []).map((r) => r.points).filter((p) => p !== null && p !== undefined);
      return h('li', {}, inj.subject, ' · ',
        first ? t('aar.responded_after', { after: fmtDuration(first.ts_ms - inj.ts_ms) }) : t('aar.no_response'),
        pts.length ? ` · ${t('aar.inject_points', { points: fmtNum(Math.max(...pts)), max: inj.points ?? '—' })}` : '');
    })) : h('p', { class: 'muted' }, t('inbox.empty')));
}

// Team names are replaced by letters in a random order, so that the
// aggregate can be shared without showing who did what.
function aggregate(all) {
  const letters = all.map((_, i) => String.fromCharCode(65 + i)).sort(() => Math.random() - 0.5);
  const steps = {};
  for (const d of all) {
    for (const st of (d.score && d.score.steps) || []) {
      const e = steps[st.step] || (steps[st.step] = { step: st.step, teams: 0, detected: 0, delays: [], plan: 0, doing: 0, unknown: 0 });
      e.teams++;
      if (st.detected) { e.detected++; if (st.delay_ms !== null && st.delay_ms !== undefined) e.delays.push(st.delay_ms); } else {
        const a = d.analysis.find((x) => x.step === st.step);
        e[a && a.cause ? a.cause : 'unknown'] = (e[a && a.cause ? a.cause : 'unknown'] || 0) + 1;
      }
    }
  }
  const axes = {};
  for (const k of AXES) {
    const pts = all.map((d) => d.score && d.score.axes && d.score.axes[k] ? d.score.axes[k].points : null).filter((x) => x !== null);
    axes[k] = pts.length ? { mean: pts.reduce((a, b) => a + b, 0) / pts.length, min: Math.min(...pts), max: Math.max(...pts) } : null;
  }
  return {
    teams: all.length,
    totals: all.map((d, i) => ({ team: letters[i], total: d.score ? d.score.total : null, max: d.score ? d.score.max : null })).sort((a, b) => (b.total ?? 0) - (a.total ?? 0)),
    axes,
    steps: Object.values(steps).map((e) => ({ step: e.step, teams: e.teams, detected: e.detected, median_ttd_ms: median(e.delays), missed_cause: { plan: e.plan, doing: e.doing, unknown: e.unknown } })),
  };
}

function aggregateView(agg) {
  return h('article', { class: 'aar-team' },
    h('h2', {}, t('aar.aggregate')),
    h('p', { class: 'muted' }, t('aar.aggregate_intro', { n: agg.teams })),
    h('h3', {}, t('aar.totals')),
    h('table', { class: 'table' }, h('tbody', {}, agg.totals.map((x) => h('tr', {}, h('td', {}, t('aar.anon_team', { letter: x.team })), h('td', {}, `${fmtNum(x.total)} / ${fmtNum(x.max)}`))))),
    h('h3', {}, t('aar.axes')),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}), h('th', {}, t('aar.mean')), h('th', {}, t('aar.min')), h('th', {}, t('aar.max')))),
      h('tbody', {}, AXES.map((k) => h('tr', {}, h('td', {}, axisName(k)),
        h('td', {}, agg.axes[k] ? fmtNum(agg.axes[k].mean) : '—'), h('td', {}, agg.axes[k] ? fmtNum(agg.axes[k].min) : '—'), h('td', {}, agg.axes[k] ? fmtNum(agg.axes[k].max) : '—'))))),
    h('h3', {}, t('aar.steps')),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, h('th', {}, t('score.step')), h('th', {}, t('aar.detected_by')), h('th', {}, t('aar.median_ttd')),
        h('th', {}, t('analysis.cause_plan')), h('th', {}, t('analysis.cause_doing')), h('th', {}, t('analysis.cause_unknown')))),
      h('tbody', {}, agg.steps.map((s) => h('tr', {}, h('td', {}, s.step), h('td', {}, `${s.detected} / ${s.teams}`),
        h('td', {}, s.median_ttd_ms === null ? '—' : fmtDuration(s.median_ttd_ms)),
        h('td', {}, s.missed_cause.plan), h('td', {}, s.missed_cause.doing), h('td', {}, s.missed_cause.unknown))))));
}

export async function render(ctx) {
  let ex; let timeline;
  try { [ex, timeline] = await Promise.all([api.get('/api/exercise'), api.get('/api/timeline').catch(() => null)]); } catch (err) { add(ctx.el, errorBox(err)); return; }
  const pick = h('select', { 'aria-label': t('aar.pick') },
    h('option', { value: 'all' }, t('aar.all_teams')),
    h('option', { value: 'aggregate' }, t('aar.aggregate')),
    (ex.teams || []).map((tm) => h('option', { value: tm.team }, tm.name)));
  const body = h('div', { class: 'aar' });
  let current = null;
  add(ctx.el, 
    h('div', { class: 'page-head no-print' }, h('h1', {}, t('aar.title')),
      h('div', { class: 'page-actions' }, pick,
        h('button', { class: 'btn', onclick: () => window.print() }, t('aar.print')),
        h('button', { class: 'btn', onclick: () => download(`aar-${ex.id}-${pick.value}.json`, JSON.stringify(current, null, 2)) }, t('aar.export')))),
    body);
  async function load() {
    fill(body, h('p', { class: 'muted' }, t('aar.loading')));
    const teams = pick.value === 'all' || pick.value === 'aggregate' ? (ex.teams || []).map((x) => x.team) : [Number(pick.value)];
    const all = await Promise.all(teams.map((tm) => gather(tm, timeline)));
    if (!ctx.alive()) return;
    const head = h('header', { class: 'aar-head' },
      h('h1', {}, ex.scenario ? ex.scenario.title : ex.id),
      h('p', { class: 'muted' }, t('aar.meta', { id: ex.id, started: fmtTime(ex.started_ms), printed: fmtTime(Date.now()) })),
      ex.state !== 'finished' ? h('p', { class: 'alert alert-warn' }, t('aar.not_finished')) : null);
    if (pick.value === 'aggregate') {
      const agg = aggregate(all);
      current = { exercise: { id: ex.id, scenario: ex.scenario }, aggregate: agg };
      fill(body, head, aggregateView(agg));
    } else {
      current = { exercise: { id: ex.id, scenario: ex.scenario, state: ex.state, started_ms: ex.started_ms }, teams: all };
      fill(body, head, all.map((d) => teamReport(ex, d)));
    }
  }
  pick.addEventListener('change', load);
  await load();
}
