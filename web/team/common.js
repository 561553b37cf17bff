// common — pieces the team views share: the page head and state words.
import { h, badge } from '../lib/dom.js';
import { t } from '../lib/i18n.js';

export function pageHead(ctx, title, ...extra) {
  return h('div', { class: 'page-head' },
    h('h1', {}, title),
    ctx.user.role !== 'member' ? h('span', { class: 'muted' }, t('team.viewing', { team: ctx.team })) : null,
    h('div', { class: 'page-actions' }, extra));
}

export function guestBadge(state) {
  const words = {
    running: t('guest.running'), booting: t('guest.booting'), crashed: t('guest.crashed'),
    stopped: t('guest.stopped'), paused: t('guest.paused'), missing: t('guest.missing'),
  };
  const kind = guestUp(state) ? 'ok' : ['booting', 'configuring', 'pending', 'paused'].includes(state) ? 'warn' : 'bad';
  return badge(words[state] || state || t('guest.unknown'), kind);
}

export function checkBadge(c) {
  if (c.up === null || c.up === undefined) return badge(t('check.pending'), 'neutral');
  return c.up ? badge(t('check.up'), 'ok') : badge(t('check.down'), 'bad');
}

// Calls fn at most once per `ms` however often events arrive.
export function throttle(fn, ms) {
  let timer = null; let again = false;
  return () => {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(function tick() {
      if (again) { again = false; fn(); timer = setTimeout(tick, ms); } else timer = null;
    }, ms);
  };
}

// A guest is up once its agent is ready ("ready"; "running" from older
// servers); booting and configuring are on their way; stopped, crashed and
// failed are down.
export function guestUp(state) {
  return state === 'ready' || state === 'running';
}
