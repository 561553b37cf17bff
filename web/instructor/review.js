// review — the queue of submitted reports and ungraded inject responses,
// and the review of one report: inline comments beside each section (with
// the selected text quoted), rubric grades, and the decision (comment,
// return for revision, accept).
import { h, errorBox, errorText, fmtTime, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { throttle } from '../team/common.js';
import { reportSections, reportStateWord, reportStateKind, decisionWord } from '../team/phases.js';
import { teamName } from './common.js';

async function renderQueue(ctx) {
  const reports = h('div');
  const responses = h('div');
  add(ctx.el, h('div', { class: 'page-head' }, h('h1', {}, t('review.title'))),
    h('h2', {}, t('review.reports')), reports, h('h2', {}, t('review.responses')), responses);
  async function load() {
    let ex;
    try { ex = await api.get('/api/exercise'); } catch (err) { fill(reports, errorBox(err)); return; }
    const teams = (ex.teams || []).map((x) => x.team);
    const [reps, inboxes] = await Promise.all([
      Promise.all(teams.map((tm) => api.get(teamPath(tm, 'reports')).catch(() => []))),
      Promise.all(teams.map((tm) => api.get(teamPath(tm, 'inbox')).catch(() => []))),
    ]);
    if (!ctx.alive()) return;
    const rq = teams.flatMap((tm, i) => reps[i].map((r) => ({ team: tm, r })))
      .sort((a, b) => (a.r.state === 'submitted' ? 0 : 1) - (b.r.state === 'submitted' ? 0 : 1) || a.r.updated_ms - b.r.updated_ms);
    fill(reports, rq.length ? h('table', { class: 'table review-queue' },
      h('thead', {}, h('tr', {}, h('th', {}, t('review.team')), h('th', {}, t('report.name')), h('th', {}, t('report.state')),
        h('th', {}, t('report.version')), h('th', {}, t('report.updated')), h('th', {}))),
      h('tbody', {}, rq.map(({ team, r }) => h('tr', { class: r.state === 'submitted' ? 'todo' : '', dataset: { report: r.id, team } },
        h('td', {}, teamName(ex, team)), h('td', {}, r.title), h('td', {}, badge(reportStateWord(r.state), reportStateKind(r.state))),
        h('td', {}, r.current_version), h('td', {}, fmtTime(r.updated_ms)),
        h('td', {}, h('a', { class: `btn btn-small ${r.state === 'submitted' ? 'btn-primary' : ''}`, href: `#/instructor/review/${team}/${r.id}` },
          r.state === 'submitted' ? t('review.open') : t('review.view')))))))
      : h('p', { class: 'muted' }, t('review.no_reports')));
    const todo = teams.flatMap((tm, i) => inboxes[i].flatMap((inj) => (inj.responses || [])
      .filter((r) => r.points === null || r.points === undefined).map((r) => ({ team: tm, inj, r }))));
    fill(responses, todo.length ? todo.map(({ team, inj, r }) => {
      const pts = h('input', { type: 'number', min: 0, max: inj.points ?? undefined, step: 0.5, class: 'num', 'aria-label': t('inbox.points') });
      return h('article', { class: 'card', dataset: { response: r.id } },
        h('header', { class: 'inline-head' }, h('strong', {}, teamName(ex, team)), h('span', {}, inj.subject),
          h('span', { class: 'muted small' }, t('inbox.response_meta', { who: r.user, when: fmtTime(r.ts_ms) }))),
        h('p', {}, r.text),
        h('form', {
          class: 'inline',
          onsubmit: async (e) => {
            e.preventDefault();
            try { await api.post(`/api/responses/${encodeURIComponent(r.id)}/grade`, { points: Number(pts.value) }); load(); } catch (err) { alert(errorText(err)); }
          },
        }, h('label', {}, t('review.points_of', { max: inj.points ?? '—' }), pts), h('button', { class: 'btn btn-small btn-primary', type: 'submit' }, t('inbox.grade'))));
    }) : h('p', { class: 'muted' }, t('review.no_responses')));
  }
  await load();
  const again = throttle(load, 2000);
  ctx.on((ev) => { if (ev.type === 'report' || ev.type === 'response' || ev.type === 'review') again(); });
}

async function renderReview(ctx, team, id) {
  let report; let ex;
  try {
    [report, ex] = await Promise.all([api.get(teamPath(team, 'reports', id)), api.get('/api/exercise')]);
  } catch (err) { add(ctx.el, errorBox(err)); return; }
  if (!ctx.alive()) return;
  const sections = reportSections(ex);
  const versions = report.versions || [];
  const submitted = versions.filter((v) => v.submitted);
  const version = submitted[submitted.length - 1] || versions[versions.length - 1];
  const pending = [];
  const grades = {};
  const msg = h('span', { class: 'form-msg', role: 'status' });

  const sectionEls = sections.map((sec) => {
    const text = h('div', { class: 'report-readonly', dataset: { section: sec.id } }, (version && version.sections && version.sections[sec.id]) || '');
    const quote = h('input', { name: `quote-${sec.id}`, placeholder: t('review.quote_hint') });
    const comment = h('textarea', { name: `comment-${sec.id}`, rows: 3 });
    const list = h('div', { class: 'pending-comments' });
    const old = (report.reviews || []).flatMap((rv) => (rv.comments || []).filter((c) => c.section === sec.id).map((c) => ({ ...c, rv })));
    const rubric = (sec.rubric || []).map((r, i) => {
      const key = `${sec.id}:${i}`;
      const input = h('input', {
        type: 'number', min: 0, max: r.points, step: 0.5, class: 'num', name: `grade-${key}`,
        oninput: () => { if (input.value === '') delete grades[key]; else grades[key] = Number(input.value); },
      });
      return h('li', {}, h('label', { class: 'rubric-line' }, h('span', {}, r.criterion), input, h('span', { class: 'muted' }, `/ ${r.points}`)));
    });
    // The text selected in the section becomes the comment's quote.
    text.addEventListener('mouseup', () => {
      const sel = window.getSelection();
      const q = sel ? sel.toString().trim() : '';
      if (q && text.contains(sel.anchorNode)) quote.value = q.slice(0, 500);
    });
    const addBtn = h('button', {
      class: 'btn btn-small', type: 'button',
      onclick: () => {
        if (!comment.value.trim()) return;
        const c = { section: sec.id, quote: quote.value.trim(), text: comment.value.trim() };
        pending.push(c);
        add(list, h('div', { class: 'comment comment-new' }, c.quote ? h('blockquote', {}, c.quote) : null, h('p', {}, c.text)));
        quote.value = ''; comment.value = '';
      },
    }, t('review.add_comment'));
    return h('section', { class: 'report-section', dataset: { section: sec.id } },
      h('div', { class: 'report-text' }, h('h2', {}, sec.title || sec.id), sec.prompt ? h('p', { class: 'muted small' }, sec.prompt) : null, text,
        rubric.length ? h('fieldset', { class: 'rubric' }, h('legend', {}, t('review.rubric')), h('ul', {}, rubric)) : null),
      h('aside', { class: 'report-comments' },
        h('h3', {}, t('report.comments')),
        old.map((c) => h('div', { class: 'comment' }, c.quote ? h('blockquote', {}, c.quote) : null, h('p', {}, c.text),
          h('div', { class: 'muted small' }, t('report.comment_meta', { who: c.rv.reviewer, version: c.rv.version, when: fmtTime(c.rv.ts_ms) })))),
        list,
        h('label', {}, t('review.quote'), quote), h('label', {}, t('review.comment'), comment), addBtn));
  });

  const decision = h('select', { name: 'decision' },
    h('option', { value: 'comment' }, t('review.decision_comment')),
    h('option', { value: 'return' }, t('review.decision_return')),
    h('option', { value: 'accept' }, t('review.decision_accept')));
  const submit = h('button', {
    class: 'btn btn-primary', type: 'button',
    onclick: async () => {
      submit.disabled = true;
      try {
        await api.post(`${teamPath(team, 'reports', report.id)}/reviews`, { version: version.version, comments: pending, grades, decision: decision.value });
        msg.className = 'form-msg alert alert-ok'; msg.textContent = t('review.sent', { decision: decisionWord(decision.value) });
        setTimeout(() => { if (ctx.alive()) ctx.go('#/instructor/review'); }, 800);
      } catch (err) {
        msg.className = 'form-msg alert alert-error'; msg.textContent = errorText(err);
        submit.disabled = false;
      }
    },
  }, t('review.send'));

  add(ctx.el, 
    h('div', { class: 'page-head' }, h('h1', {}, t('review.review_of', { title: report.title, team: teamName(ex, team) })),
      h('div', { class: 'page-actions' },
        h('a', { class: 'btn', href: `#/team/${team}/reports/${report.id}` }, t('review.team_view')),
        h('a', { class: 'btn', href: '#/instructor/review' }, t('report.back')))),
    h('div', { class: 'card report-head' }, badge(reportStateWord(report.state), reportStateKind(report.state)), ' ',
      version ? t('review.version_line', { n: version.version, who: version.author || '', when: fmtTime(version.ts_ms) }) : t('review.no_version')),
    h('p', { class: 'muted small' }, t('review.how')),
    sectionEls,
    h('div', { class: 'form-foot sticky-foot' }, h('label', {}, t('review.decision'), decision), submit, msg));
}

export async function render(ctx) {
  if (ctx.user.role !== 'instructor') { add(ctx.el, h('div', { class: 'alert alert-error' }, t('error.forbidden'))); return; }
  if (ctx.args.length >= 2) await renderReview(ctx, Number(ctx.args[0]), ctx.args[1]);
  else await renderQueue(ctx);
}
