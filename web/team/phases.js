// phases — the report sections: the scenario's report template, or the
// four CYDER phases when the scenario has none.
import { t } from '../lib/i18n.js';

export function reportSections(exercise) {
  const tpl = exercise && exercise.report_template && exercise.report_template.sections;
  if (tpl && tpl.length) return tpl;
  return [
    { id: 'detection', title: t('phase.detection'), prompt: t('phase.detection_prompt'), rubric: [] },
    { id: 'response', title: t('phase.response'), prompt: t('phase.response_prompt'), rubric: [] },
    { id: 'reporting', title: t('phase.reporting'), prompt: t('phase.reporting_prompt'), rubric: [] },
    { id: 'recovery', title: t('phase.recovery'), prompt: t('phase.recovery_prompt'), rubric: [] },
  ];
}

export function reportStateWord(st) {
  return {
    draft: t('report.state_draft'), submitted: t('report.state_submitted'),
    returned: t('report.state_returned'), accepted: t('report.state_accepted'),
  }[st] || st;
}

export function reportStateKind(st) {
  return { draft: 'neutral', submitted: 'info', returned: 'warn', accepted: 'ok' }[st] || 'neutral';
}

export function decisionWord(d) {
  return { comment: t('review.decision_comment'), return: t('review.decision_return'), accept: t('review.decision_accept') }[d] || d;
}
