// analysis — after the exercise: for every step the team missed, its own
// analysis of the cause, plan (the contingency plan did not cover it) or
// doing (the plan covered it, the team did not carry it out), and what it
// will change.  Stored at /api/teams/{team}/analysis (see the report of
// this module's author: the endpoint is a proposed addition to the API).
import { h, errorBox, errorText, download, fmtTime, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { pageHead } from './common.js';

export function causeWord(c) {
  return { plan: t('analysis.cause_plan'), doing: t('analysis.cause_doing'), unknown: t('analysis.cause_unknown') }[c] || '—';
}

function stepLabel(st) {
  const bits = [st.step];
  if (st.action) bits.push(st.action);
  if (st.target) bits.push(`→ ${st.target}`);
  if (st.technique) bits.push(`(${st.technique})`);
  return bits.join(' ');
}

export async function render(ctx) {
  const head = pageHead(ctx, t('analysis.title'));
  add(ctx.el, head);
  if (!ctx.exercise || ctx.exercise.state !== 'finished') { add(ctx.el, h('p', { class: 'muted' }, t('analysis.after_only'))); return; }
  let score;
  try { score = await api.get(teamPath(ctx.team, 'score')); } catch (err) { add(ctx.el, errorBox(err)); return; }
  // 404: the team has not saved its analysis yet.
  let saved = { items: [] };
  try { saved = await api.get(teamPath(ctx.team, 'analysis')); } catch (err) {
    if (err.status !== 404) { add(ctx.el, errorBox(err)); return; }
  }
  if (!ctx.alive()) return;
  const missed = (score.steps || []).filter((st) => !st.detected);
  if (!missed.length) { add(ctx.el, h('p', { class: 'alert alert-ok' }, t('analysis.nothing_missed'))); return; }
  const byStep = Object.fromEntries((saved.items || []).map((it) => [it.step, it]));
  const canWrite = ctx.user.role === 'member';
  const rows = missed.map((st) => {
    const prev = byStep[st.step] || {};
    const name = `cause-${st.step}`;
    const radios = ['plan', 'doing', 'unknown'].map((c) => h('label', { class: 'radio' },
      h('input', { type: 'radio', name, value: c, checked: prev.cause === c, disabled: !canWrite }), causeWord(c)));
    const what = h('textarea', { rows: 3, value: prev.what || '', disabled: !canWrite, name: `what-${st.step}` });
    const improve = h('textarea', { rows: 2, value: prev.improve || '', disabled: !canWrite, name: `improve-${st.step}` });
    const el = h('section', { class: 'card analysis-item', dataset: { step: st.step } },
      h('h2', {}, stepLabel(st)),
      st.start_ms ? h('p', { class: 'muted small' }, t('analysis.when', { when: fmtTime(st.start_ms) })) : null,
      h('fieldset', {}, h('legend', {}, t('analysis.cause')), radios),
      h('label', {}, t('analysis.what'), what),
      h('label', {}, t('analysis.improve'), improve),
      saved.updated_ms && byStep[st.step] ? h('p', { class: 'muted small' }, t('analysis.saved_meta', { who: saved.author || '', when: fmtTime(saved.updated_ms) })) : null);
    return {
      el,
      value: () => ({
        step: st.step,
        cause: (el.querySelector(`input[name="${CSS.escape(name)}"]:checked`) || {}).value || 'unknown',
        what: what.value, improve: improve.value,
      }),
    };
  });
  const msg = h('span', { class: 'form-msg', role: 'status' });
  const collect = () => ({ team: ctx.team, items: rows.map((r) => r.value()) });
  add(ctx.el, 
    h('p', { class: 'muted' }, t('analysis.intro')),
    rows.map((r) => r.el),
    h('div', { class: 'form-foot' },
      canWrite ? h('button', {
        class: 'btn btn-primary',
        onclick: async () => {
          try { await api.put(teamPath(ctx.team, 'analysis'), collect()); msg.className = 'form-msg alert alert-ok'; msg.textContent = t('analysis.saved'); } catch (err) { msg.className = 'form-msg alert alert-error'; msg.textContent = errorText(err); }
        },
      }, t('analysis.save')) : null,
      h('button', { class: 'btn', onclick: () => download(`analysis-team${ctx.team}.json`, JSON.stringify(collect(), null, 2)) }, t('analysis.export')),
      msg));
}
