// controls — start, pause, resume, reset a team (or all), skip a step or
// run (inject) it now.  Every command is shown with the orchestrator's answer.
import { h, errorBox, errorText, fmtDuration, fmtClock, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api } from '../lib/api.js';
import { throttle } from '../team/common.js';
import { clockBadge, stepGroup, stepStateWord, teamName } from './common.js';

export async function render(ctx) {
  let ex;
  try { ex = await api.get('/api/exercise'); } catch (err) { add(ctx.el, errorBox(err)); return; }
  const teamSel = h('select', { name: 'team', 'aria-label': t('controls.team') },
    h('option', { value: '0' }, t('controls.all_teams')),
    (ex.teams || []).map((tm) => h('option', { value: tm.team }, tm.name)));
  const log = h('ol', { class: 'feed control-log' });
  const steps = h('div');

  async function send(cmd, step) {
    const team = Number(teamSel.value);
    if (cmd === 'reset' && !confirm(team ? t('controls.confirm_reset', { team: teamName(ex, team) }) : t('controls.confirm_reset_all'))) return;
    const body = { cmd, team };
    if (step) body.step = step;
    const line = h('li', {}, h('span', { class: 'muted' }, fmtClock(Date.now())), ' ', h('code', {}, JSON.stringify(body)), ' … ');
    log.prepend(line);
    try {
      const ans = await api.post('/api/control', body);
      line.append(ans && ans.ok === false ? badge(t('controls.refused'), 'bad') : badge(t('controls.ok'), 'ok'), ' ', h('code', { class: 'small' }, JSON.stringify(ans)));
    } catch (err) {
      line.append(badge(t('controls.failed'), 'bad'), ' ', errorText(err));
    }
    loadSteps();
  }

  async function loadSteps() {
    let tl;
    try { tl = await api.get('/api/timeline'); } catch (err) { fill(steps, errorBox(err)); return; }
    if (!ctx.alive()) return;
    const team = Number(teamSel.value);
    const shown = (tl.teams || []).filter((x) => !team || x.team === team);
    fill(steps, shown.map((x) => h('section', { class: 'card', dataset: { team: x.team } },
      h('header', { class: 'inline-head' }, h('h2', {}, teamName(ex, x.team)), clockBadge(x.clock), h('span', { class: 'muted' }, fmtDuration(x.elapsed_ms)),
        x.speed && x.speed !== 1 ? h('span', { class: 'chip' }, `×${x.speed}`) : null),
      h('table', { class: 'table steps' },
        h('thead', {}, h('tr', {}, h('th', {}, t('controls.step')), h('th', {}, t('controls.action')), h('th', {}, t('controls.target')),
          h('th', {}, t('controls.due')), h('th', {}, t('controls.state')), h('th', {}, t('controls.outcome')), h('th', {}))),
        h('tbody', {}, (x.steps || []).map((st) => h('tr', { class: `step-${stepGroup(st.state)}` },
          h('td', {}, h('code', {}, st.id)), h('td', {}, st.action), h('td', {}, st.target || ''),
          h('td', {}, fmtDuration(st.due_ms)), h('td', {}, stepStateWord(st.state)),
          h('td', { class: 'small' }, [st.outcome, st.detail].filter(Boolean).join(': ')),
          h('td', { class: 'nowrap' },
            stepGroup(st.state) === 'pending' ? [
              h('button', { class: 'btn btn-small', onclick: () => { teamSel.value = String(x.team); send('run', st.id); } }, t('controls.run')),
              h('button', { class: 'btn btn-small', onclick: () => { teamSel.value = String(x.team); send('skip', st.id); } }, t('controls.skip'))] : null))))))));
  }

  const btn = (cmd, label, cls) => h('button', { class: `btn ${cls || ''}`, onclick: () => send(cmd) }, label);
  add(ctx.el, 
    h('div', { class: 'page-head' }, h('h1', {}, t('controls.title'))),
    h('div', { class: 'card controls' },
      h('label', {}, t('controls.team'), teamSel),
      btn('start', t('controls.start'), 'btn-primary'), btn('pause', t('controls.pause')), btn('resume', t('controls.resume')),
      btn('reset', t('controls.reset'), 'btn-danger')),
    h('div', { class: 'controls-layout' }, steps, h('aside', { class: 'card' }, h('h2', {}, t('controls.log')), log)));
  teamSel.addEventListener('change', loadSteps);
  await loadSteps();
  const again = throttle(loadSteps, 2000);
  ctx.on((ev) => { if (ev.type === 'step' || ev.type === 'timeline') again(); });
  ctx.every(10000, loadSteps);
}
