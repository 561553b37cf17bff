// common — words and data the instructor views share.
import { t } from '../lib/i18n.js';
import { badge } from '../lib/dom.js';

export function clockWord(c) {
  return {
    stopped: t('clock.stopped'), running: t('clock.running'), paused: t('clock.paused'),
    ended: t('clock.finished'), finished: t('clock.finished'),
  }[c] || c;
}

export function clockBadge(c) {
  const kind = { running: 'ok', paused: 'warn', stopped: 'neutral', ended: 'info', finished: 'info' }[c] || 'neutral';
  return badge(clockWord(c), kind);
}

// Step states of the timeline, grouped for progress bars.
export function stepGroup(state) {
  if (state === 'succeeded') return 'done';
  if (state === 'failed') return 'failed';
  if (state === 'running' || state === 'checking') return 'running';
  if (state === 'skipped' || state === 'not taken') return 'skipped';
  return 'pending';
}

export function stepStateWord(state) {
  return {
    pending: t('step.pending'), scheduled: t('step.scheduled'), checking: t('step.checking'),
    running: t('step.running'), succeeded: t('step.succeeded'), failed: t('step.failed'),
    skipped: t('step.skipped'), 'not taken': t('step.not_taken'), 'on demand': t('step.on_demand'),
  }[state] || state;
}

export function teamName(exercise, team) {
  const tm = exercise && (exercise.teams || []).find((x) => x.team === team);
  return tm ? tm.name : t('team.name', { team });
}

// A team is stuck when attack steps have landed for this long with no
// finding from it since the oldest of them.
export const STUCK_MS = 10 * 60000;
