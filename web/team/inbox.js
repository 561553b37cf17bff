// inbox — narrative injects (a press inquiry, a regulator's question …)
// with their deadlines, and the team's responses.  Instructors grade the
// responses here too.
import { h, errorBox, errorText, fmtTime, fmtDuration, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { pageHead, throttle } from './common.js';

function deadlineBadge(inj, now) {
  if (!inj.deadline_ms) return null;
  const due = inj.ts_ms + inj.deadline_ms;
  const answered = (inj.responses || []).some((r) => r.ts_ms <= due);
  if (answered) return badge(t('inbox.answered'), 'ok');
  if (now > due) return badge(t('inbox.overdue', { late: fmtDuration(now - due) }), 'bad');
  return badge(t('inbox.due_in', { left: fmtDuration(due - now) }), due - now < 5 * 60000 ? 'warn' : 'info');
}

function gradeControl(resp, inj, reload) {
  const input = h('input', { type: 'number', min: 0, max: inj.points ?? undefined, step: 0.5, value: resp.points ?? '', class: 'num', 'aria-label': t('inbox.points') });
  return h('form', {
    class: 'inline',
    onsubmit: async (e) => {
      e.preventDefault();
      try { await api.post(`/api/responses/${encodeURIComponent(resp.id)}/grade`, { points: Number(input.value) }); reload(); } catch (err) { alert(errorText(err)); }
    },
  }, input, h('button', { class: 'btn btn-small', type: 'submit' }, t('inbox.grade')));
}

function injectCard(ctx, inj, reload) {
  const now = Date.now();
  const canAnswer = ctx.user.role === 'member';
  const text = h('textarea', { rows: 4, name: 'response', required: true });
  const msg = h('span', { class: 'form-msg' });
  return h('article', { class: 'card inject', dataset: { inject: inj.id } },
    h('header', { class: 'inject-head' },
      h('h2', {}, inj.subject),
      deadlineBadge(inj, now)),
    h('div', { class: 'muted small' },
      t('inbox.meta', { from: inj.from || '', channel: inj.channel || '', when: fmtTime(inj.ts_ms) }),
      inj.deadline_ms ? ` · ${t('inbox.deadline', { when: fmtTime(inj.ts_ms + inj.deadline_ms) })}` : '',
      inj.points ? ` · ${t('inbox.worth', { points: inj.points })}` : ''),
    h('p', { class: 'inject-body' }, inj.body),
    h('h3', {}, t('inbox.responses')),
    (inj.responses || []).length ? h('ul', { class: 'responses' }, inj.responses.map((r) => h('li', {},
      h('p', {}, r.text),
      h('div', { class: 'muted small' }, t('inbox.response_meta', { who: r.user, when: fmtTime(r.ts_ms) }),
        r.points !== null && r.points !== undefined ? ` · ${t('inbox.graded', { points: r.points, who: r.grader || '' })}` : ` · ${t('inbox.ungraded')}`),
      ctx.user.role === 'instructor' ? gradeControl(r, inj, reload) : null)))
      : h('p', { class: 'muted' }, t('inbox.no_responses')),
    canAnswer ? h('form', {
      class: 'respond',
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api.post(teamPath(ctx.team, 'inbox', inj.id, 'responses'), { text: text.value });
          text.value = ''; reload();
        } catch (err) { msg.className = 'form-msg alert alert-error'; msg.textContent = errorText(err); }
      },
    }, h('label', {}, t('inbox.your_response'), text), h('button', { class: 'btn btn-primary', type: 'submit' }, t('inbox.send')), msg) : null);
}

export async function render(ctx) {
  const list = h('div', { class: 'inbox' });
  add(ctx.el, pageHead(ctx, t('inbox.title')), list);
  async function load() {
    let items;
    try { items = await api.get(teamPath(ctx.team, 'inbox')); } catch (err) { fill(list, errorBox(err)); return; }
    if (!ctx.alive()) return;
    // Keep what is being typed: only redraw when nothing is being written.
    if (list.contains(document.activeElement) && document.activeElement.tagName === 'TEXTAREA' && document.activeElement.value) return;
    items = items.slice().sort((a, b) => b.ts_ms - a.ts_ms);
    fill(list, items.length ? items.map((inj) => injectCard(ctx, inj, load)) : h('p', { class: 'muted' }, t('inbox.empty')));
  }
  await load();
  const again = throttle(load, 1500);
  ctx.on((ev) => { if ((ev.type === 'inject' || ev.type === 'response') && (!ev.team || ev.team === ctx.team)) again(); });
  ctx.every(30000, load);
}
