// reports — incident reports by CYDER phase: the list, and an editor with
// drafts, submitted versions and the instructors' comments beside the text.
import { h, clear, errorBox, errorText, fmtTime, badge, fill, add } from '../lib/dom.js';
import { t } from '../lib/i18n.js';
import { api, teamPath } from '../lib/api.js';
import { pageHead, throttle } from './common.js';
import { reportSections, reportStateWord, reportStateKind, decisionWord } from './phases.js';

async function renderList(ctx) {
  const list = h('div');
  const canWrite = ctx.user.role === 'member';
  add(ctx.el, pageHead(ctx, t('report.title'),
    canWrite ? h('a', { class: 'btn btn-primary', href: `#/team/${ctx.team}/reports/new` }, t('report.new')) : null), list);
  async function load() {
    let items;
    try { items = await api.get(teamPath(ctx.team, 'reports')); } catch (err) { fill(list, errorBox(err)); return; }
    if (!ctx.alive()) return;
    fill(list, items.length ? h('table', { class: 'table reports-list' },
      h('thead', {}, h('tr', {}, h('th', {}, t('report.name')), h('th', {}, t('report.state')), h('th', {}, t('report.version')), h('th', {}, t('report.updated')))),
      h('tbody', {}, items.map((r) => h('tr', { dataset: { report: r.id } },
        h('td', {}, h('a', { href: `#/team/${ctx.team}/reports/${r.id}` }, r.title || t('report.untitled'))),
        h('td', {}, badge(reportStateWord(r.state), reportStateKind(r.state))),
        h('td', {}, r.current_version), h('td', {}, fmtTime(r.updated_ms))))))
      : h('p', { class: 'muted' }, t('report.none')));
  }
  await load();
  const again = throttle(load, 1500);
  ctx.on((ev) => { if ((ev.type === 'report' || ev.type === 'review') && (!ev.team || ev.team === ctx.team)) again(); });
}

// The comments of every review on `section`, newest first.
function commentsFor(report, section) {
  const out = [];
  for (const rv of (report && report.reviews) || []) {
    for (const c of rv.comments || []) if (c.section === section) out.push({ ...c, review: rv });
  }
  return out.sort((a, b) => b.review.ts_ms - a.review.ts_ms);
}

function gradesFor(report, sec) {
  const last = ((report && report.reviews) || []).filter((rv) => rv.grades && Object.keys(rv.grades).length).pop();
  if (!last || !(sec.rubric || []).length) return null;
  return h('ul', { class: 'rubric-result' }, sec.rubric.map((r, i) => {
    const got = last.grades[`${sec.id}:${i}`];
    return h('li', {}, `${r.criterion}: `, h('strong', {}, got === undefined ? '—' : String(got)), ` / ${r.points}`);
  }));
}

async function renderEditor(ctx, id) {
  const sections = reportSections(ctx.exercise);
  let report = null;
  if (id !== 'new') {
    try { report = await api.get(teamPath(ctx.team, 'reports', id)); } catch (err) { add(ctx.el, pageHead(ctx, t('report.title')), errorBox(err)); return; }
  }
  if (!ctx.alive()) return;
  const versions = report ? report.versions || [] : [];
  const current = versions[versions.length - 1] || null;
  let shown = current;
  const editable = ctx.user.role === 'member' && (!report || report.state === 'draft' || report.state === 'returned');
  const title = h('input', { name: 'title', value: report ? report.title : '', required: true, disabled: !editable, class: 'report-title' });
  const msg = h('div', { class: 'form-msg', role: 'status' });
  const body = h('div', { class: 'report-body' });
  const areas = {};

  function drawSections() {
    clear(body);
    const readOnly = !editable || shown !== current;
    for (const sec of sections) {
      const text = shown && shown.sections ? shown.sections[sec.id] || '' : '';
      const area = h('textarea', { name: sec.id, rows: 7, disabled: readOnly, value: text, dataset: { section: sec.id } });
      areas[sec.id] = area;
      const comments = commentsFor(report, sec.id);
      body.append(h('section', { class: 'report-section', dataset: { section: sec.id } },
        h('div', { class: 'report-text' },
          h('h2', {}, sec.title || sec.id),
          sec.prompt ? h('p', { class: 'muted small' }, sec.prompt) : null,
          area,
          gradesFor(report, sec)),
        h('aside', { class: 'report-comments', 'aria-label': t('report.comments') },
          h('h3', {}, t('report.comments')),
          comments.length ? comments.map((c) => h('div', { class: 'comment' },
            c.quote ? h('blockquote', {}, c.quote) : null,
            h('p', {}, c.text),
            h('div', { class: 'muted small' }, t('report.comment_meta', { who: c.review.reviewer, version: c.review.version, when: fmtTime(c.review.ts_ms) }))))
            : h('p', { class: 'muted small' }, t('report.no_comments')))));
    }
  }

  async function save(submit) {
    const sectionsOut = {};
    for (const sec of sections) sectionsOut[sec.id] = areas[sec.id].value;
    const payload = { title: title.value.trim() || t('report.untitled'), sections: sectionsOut, submit };
    msg.className = 'form-msg'; msg.textContent = t('report.saving');
    try {
      let ans;
      if (!report) ans = await api.post(teamPath(ctx.team, 'reports'), payload);
      else ans = await api.put(teamPath(ctx.team, 'reports', report.id), { base_version: report.current_version, ...payload });
      if (!report) { ctx.go(`#/team/${ctx.team}/reports/${ans.id}`); return; }
      report = await api.get(teamPath(ctx.team, 'reports', report.id));
      // The hash is unchanged, so the router does not redraw: do it here.
      clear(ctx.el); await renderEditor(ctx, String(report.id));
    } catch (err) {
      msg.className = 'form-msg alert alert-error';
      msg.textContent = err.status === 409 ? t('report.conflict') : errorText(err);
    }
  }

  const versionSel = versions.length > 1 ? h('select', {
    'aria-label': t('report.version'),
    onchange: () => { shown = versions.find((v) => String(v.version) === versionSel.value); drawSections(); },
  }, versions.map((v) => h('option', { value: v.version, selected: v === current },
    v.submitted ? t('report.version_submitted', { n: v.version, when: fmtTime(v.ts_ms), who: v.author || '' })
      : t('report.version_draft', { n: v.version, when: fmtTime(v.ts_ms), who: v.author || '' })))) : null;

  const lastReview = report && (report.reviews || []).length ? report.reviews[report.reviews.length - 1] : null;
  add(ctx.el, 
    pageHead(ctx, report ? t('report.edit') : t('report.new'),
      h('a', { class: 'btn', href: `#/team/${ctx.team}/reports` }, t('report.back'))),
    h('div', { class: 'card report-head' },
      h('label', {}, t('report.name'), title),
      report ? h('div', { class: 'report-meta' }, badge(reportStateWord(report.state), reportStateKind(report.state)), ' ',
        t('report.current', { n: report.current_version }), versionSel ? [' ', versionSel] : null) : null,
      lastReview ? h('div', { class: `alert ${lastReview.decision === 'return' ? 'alert-warn' : 'alert-info'}` },
        t('report.last_review', { decision: decisionWord(lastReview.decision), who: lastReview.reviewer, when: fmtTime(lastReview.ts_ms) })) : null),
    body,
    editable ? h('div', { class: 'form-foot sticky-foot' },
      h('button', { class: 'btn', type: 'button', onclick: () => save(false) }, t('report.save_draft')),
      h('button', { class: 'btn btn-primary', type: 'button', onclick: () => save(true) }, t('report.submit')), msg)
      : h('p', { class: 'muted' }, report && report.state === 'submitted' ? t('report.locked') : ''));
  drawSections();
}

export async function render(ctx) {
  if (ctx.args[0]) await renderEditor(ctx, ctx.args[0]);
  else await renderList(ctx);
}
