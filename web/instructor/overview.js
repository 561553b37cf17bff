// overview — every team live: timeline progress, score, findings as they
// arrive, checks, capture counters and guest health, with alerts when a
// team is stuck or a guest or service is down.
import { h, clear, errorBox, fmtDuration, fmtClock, fmtNum, fmtBytes, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { stackBar } from '../lib/charts.js';
import { throttle, guestUp } from '../team/common.js';
import { clockBadge, stepGroup, teamName, STUCK_MS } from './common.js';

async function teamData(team) {
  const get = (p) => api.get(teamPath(team, p)).catch(() => null);
  const [map, wire, findings] = await Promise.all([get('map'), get('wire'), get('findings')]);
  return { map, wire, findings: findings || [] };
}

function alertsFor(name, tl, d, now) {
  const out = [];
  for (const ho of (d.map && d.map.hosts) || []) {
    if (!guestUp(ho.state)) out.push({ kind: 'bad', text: t('overview.alert_guest', { team: name, host: ho.name, state: ho.state }) });
    else if (!ho.agent) out.push({ kind: 'warn', text: t('overview.alert_agent', { team: name, host: ho.name }) });
  }
  for (const c of (d.map && d.map.checks) || []) {
    if (c.up === false) out.push({ kind: 'warn', text: t('overview.alert_check', { team: name, check: c.id }) });
  }
  if (tl && tl.clock === 'running') {
    const lastFinding = Math.max(0, ...d.findings.map((f) => f.submitted_ms || 0));
    // Step times are exercise time: back to wall-clock time through the
    // clock's elapsed time and speed.
    const wall = (st) => now - ((tl.elapsed_ms || 0) - st.started_ms) / (tl.speed || 1);
    const landed = (tl.steps || []).filter((st) => st.started_ms != null && st.started_ms >= 0 && wall(st) > lastFinding && stepGroup(st.state) === 'done');
    const oldest = Math.min(...landed.map(wall));
    if (landed.length && now - oldest > STUCK_MS) {
      out.push({ kind: 'warn', text: t('overview.alert_stuck', { team: name, n: landed.length, since: fmtDuration(now - oldest) }) });
    }
  }
  return out;
}

function progress(tl) {
  const n = { done: 0, running: 0, failed: 0, skipped: 0, pending: 0 };
  for (const st of tl.steps || []) n[stepGroup(st.state)]++;
  return h('div', {},
    stackBar([
      { n: n.done, cls: 'p-done', title: t('overview.steps_done', { n: n.done }) },
      { n: n.running, cls: 'p-running', title: t('overview.steps_running', { n: n.running }) },
      { n: n.failed, cls: 'p-failed', title: t('overview.steps_failed', { n: n.failed }) },
      { n: n.skipped, cls: 'p-skipped', title: t('overview.steps_skipped', { n: n.skipped }) },
      { n: n.pending, cls: 'p-pending', title: t('overview.steps_pending', { n: n.pending }) },
    ]),
    h('div', { class: 'small muted' }, t('overview.progress', { done: n.done + n.failed + n.skipped, total: (tl.steps || []).length })));
}

function teamCard(ex, tl, sb, d) {
  const team = tl ? tl.team : sb.team;
  const hosts = (d.map && d.map.hosts) || [];
  const up = hosts.filter((x) => guestUp(x.state)).length;
  const checks = (d.map && d.map.checks) || [];
  const okChecks = checks.filter((c) => c.up === true).length;
  const last = d.findings.slice().sort((a, b) => (b.submitted_ms || 0) - (a.submitted_ms || 0))[0];
  const drops = d.wire ? (d.wire.kernel_drops || 0) + (d.wire.if_drops || 0) : 0;
  return h('article', { class: 'card team-card', dataset: { team } },
    h('header', {},
      h('h2', {}, h('a', { href: `#/team/${team}/map` }, teamName(ex, team))),
      tl ? clockBadge(tl.clock) : null,
      tl ? h('span', { class: 'muted' }, fmtDuration(tl.elapsed_ms)) : null,
      sb ? h('span', { class: 'team-score' }, `${fmtNum(sb.total)} / ${fmtNum(sb.max)}`) : null),
    tl ? progress(tl) : null,
    h('dl', { class: 'kv' },
      h('dt', {}, t('overview.guests')),
      h('dd', {}, up === hosts.length ? badge(`${up}/${hosts.length}`, 'ok') : badge(`${up}/${hosts.length}`, 'bad'),
        ' ', hosts.filter((x) => !guestUp(x.state)).map((x) => h('span', { class: 'chip chip-bad' }, x.name))),
      h('dt', {}, t('overview.checks')),
      h('dd', {}, checks.length ? badge(`${okChecks}/${checks.length}`, okChecks === checks.length ? 'ok' : 'warn') : '—'),
      h('dt', {}, t('overview.findings')),
      h('dd', {}, String(d.findings.length), last ? h('span', { class: 'muted small' }, ` · ${fmtClock(last.submitted_ms)} ${last.description.slice(0, 60)}`) : null),
      h('dt', {}, t('overview.capture')),
      h('dd', {}, d.wire ? t('overview.capture_value', { packets: fmtNum(d.wire.packets), bytes: fmtBytes(d.wire.bytes), drops: fmtNum(drops) }) : '—')),
    h('footer', {},
      h('a', { class: 'btn btn-small', href: `#/team/${team}/map` }, t('overview.open_team')),
      h('a', { class: 'btn btn-small', href: `#/team/${team}/findings` }, t('nav.findings')),
      h('a', { class: 'btn btn-small', href: `#/team/${team}/score` }, t('nav.score'))));
}

export async function render(ctx) {
  const alerts = h('div', { class: 'alerts', 'aria-live': 'polite' });
  const grid = h('div', { class: 'team-grid' });
  const feed = h('ol', { class: 'feed' });
  add(ctx.el, 
    h('div', { class: 'page-head' }, h('h1', {}, t('overview.title'))),
    alerts,
    h('div', { class: 'overview' }, grid,
      h('aside', { class: 'card feed-box' }, h('h2', {}, t('overview.feed')), feed)));

  function feedItem(ex, team, text, when, kind) {
    feed.prepend(h('li', { class: `feed-${kind}` }, h('span', { class: 'muted' }, fmtClock(when)), ' ',
      h('strong', {}, teamName(ex, team)), ' ', text));
    while (feed.children.length > 100) feed.lastChild.remove();
  }

  async function load() {
    let ex; let tlAll; let board;
    try {
      [ex, tlAll, board] = await Promise.all([api.get('/api/exercise'), api.get('/api/timeline'), api.get('/api/scoreboard')]);
    } catch (err) { fill(grid, errorBox(err)); return; }
    const teams = (ex.teams || []).map((x) => x.team);
    const data = await Promise.all(teams.map(teamData));
    if (!ctx.alive()) return;
    const now = Date.now();
    const all = [];
    clear(grid);
    teams.forEach((team, i) => {
      const tl = (tlAll.teams || []).find((x) => x.team === team);
      const sb = (board || []).find((x) => x.team === team);
      all.push(...alertsFor(teamName(ex, team), tl, data[i], now));
      grid.append(teamCard(ex, tl || { team, steps: [] }, sb, data[i]));
    });
    fill(alerts, all.length ? all.map((a) => h('div', { class: `alert alert-${a.kind === 'bad' ? 'error' : 'warn'}` }, a.text))
      : h('div', { class: 'alert alert-ok' }, t('overview.all_well')));
    if (!feed.children.length) {
      const recent = data.flatMap((d, i) => d.findings.map((f) => ({ team: teams[i], f }))).sort((a, b) => a.f.submitted_ms - b.f.submitted_ms).slice(-20);
      recent.forEach(({ team, f }) => feedItem(ex, team, t('overview.feed_finding', { id: f.id, text: f.description }), f.submitted_ms, 'finding'));
    }
    ctx.lastExercise = ex;
  }
  await load();
  const again = throttle(load, 3000);
  ctx.on((ev) => {
    const ex = ctx.lastExercise;
    const d = ev.data || {};
    if (ev.type === 'finding') feedItem(ex, ev.team, t('overview.feed_finding', { id: d.id ?? '', text: d.description || '' }), ev.ts_ms || Date.now(), 'finding');
    else if (ev.type === 'guest') feedItem(ex, ev.team, t('overview.feed_guest', { host: d.host || '', state: d.state || '' }), ev.ts_ms || Date.now(), 'guest');
    else if (ev.type === 'step') feedItem(ex, ev.team, t('overview.feed_step', { step: d.id || d.step || '', state: d.state || '' }), ev.ts_ms || Date.now(), 'step');
    else if (ev.type === 'report') feedItem(ex, ev.team, t('overview.feed_report', { title: d.title || '', state: d.state || '' }), ev.ts_ms || Date.now(), 'report');
    again();
  });
  ctx.every(10000, load);
}
