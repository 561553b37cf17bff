// app — the single-page UI: session, router and navigation.  Routes are
// hashes: #/login, #/team/<n>/<view>[/<arg>], #/instructor/<view>[/<args>].
// The API client (lib/api.js, CSRF header) and the events WebSocket
// (lib/events.js, reconnecting) are started here.
import { h, clear, errorBox } from './lib/dom.js';
import { t, initI18n, setLang, getLang } from './lib/i18n.js';
import { api, setCsrf, onLoggedOut } from './lib/api.js';
import { startEvents, stopEvents, onEvent, onStatus } from './lib/events.js';

const TEAM_VIEWS = {
  map: () => import('./team/map.js'),
  console: () => import('./team/console.js'),
  findings: () => import('./team/findings.js'),
  reports: () => import('./team/reports.js'),
  inbox: () => import('./team/inbox.js'),
  capture: () => import('./team/capture.js'),
  score: () => import('./team/score.js'),
  timeline: () => import('./team/timeline.js'),
  analysis: () => import('./team/analysis.js'),
};
const INSTRUCTOR_VIEWS = {
  overview: () => import('./instructor/overview.js'),
  controls: () => import('./instructor/controls.js'),
  review: () => import('./instructor/review.js'),
  scoreboard: () => import('./instructor/scoreboard.js'),
  aar: () => import('./instructor/aar.js'),
};

const state = { user: null, exercise: null };
let cleanups = [];
let renderSeq = 0;

function teamNav(team) {
  const items = [
    ['map', t('nav.map')], ['findings', t('nav.findings')], ['reports', t('nav.reports')],
    ['inbox', t('nav.inbox')], ['capture', t('nav.capture')], ['score', t('nav.score')],
    ['timeline', t('nav.timeline')],
  ];
  if (state.exercise && state.exercise.state === 'finished') items.push(['analysis', t('nav.analysis')]);
  return items.map(([v, label]) => [`#/team/${team}/${v}`, label]);
}

function instructorNav() {
  const items = [['overview', t('nav.overview')]];
  if (state.user.role === 'instructor') items.push(['controls', t('nav.controls')], ['review', t('nav.review')]);
  items.push(['scoreboard', t('nav.scoreboard')], ['aar', t('nav.aar')]);
  return items.map(([v, label]) => [`#/instructor/${v}`, label]);
}

function renderChrome(parts) {
  const nav = clear(document.getElementById('nav'));
  const who = document.getElementById('who');
  const logout = document.getElementById('logout');
  const exState = document.getElementById('exercise-state');
  document.title = t('app.title');
  document.querySelector('.brand').textContent = t('app.title');
  if (!state.user) { who.textContent = ''; logout.hidden = true; exState.textContent = ''; return; }
  logout.hidden = false;
  logout.textContent = t('app.logout');
  const roleName = { instructor: t('role.instructor'), member: t('role.member'), observer: t('role.observer') }[state.user.role] || state.user.role;
  who.textContent = state.user.team
    ? t('app.user_team', { name: state.user.name, role: roleName, team: state.user.team })
    : t('app.user', { name: state.user.name, role: roleName });
  const ex = state.exercise;
  const exWord = ex ? ({ running: t('exercise.running'), held: t('exercise.held'), finished: t('exercise.finished') }[ex.state] || ex.state) : '';
  exState.textContent = ex ? `${ex.scenario ? ex.scenario.title : ex.id} · ${exWord}` : '';
  let links = [];
  if (parts[0] === 'team') {
    if (state.user.role !== 'member') links.push(['#/instructor/overview', `← ${t('nav.instructor')}`]);
    links = links.concat(teamNav(parts[1]));
  } else if (state.user.role !== 'member') {
    links = instructorNav();
  } else {
    links = teamNav(state.user.team);
  }
  const here = `#/${parts.slice(0, parts[0] === 'team' ? 3 : 2).join('/')}`;
  for (const [href, label] of links) {
    nav.append(h('a', { href, class: href === here ? 'active' : '', 'aria-current': href === here ? 'page' : null }, label));
  }
}

function homeFor(user) {
  return user.role === 'member' ? `#/team/${user.team}/map` : '#/instructor/overview';
}

async function refreshExercise() {
  try { state.exercise = await api.get('/api/exercise'); } catch { /* shown by the views that need it */ }
}

async function loggedIn(ans) {
  state.user = ans.user;
  setCsrf(ans.csrf);
  await refreshExercise();
  startEvents();
  if (location.hash === homeFor(state.user)) route();
  else location.hash = homeFor(state.user);
}

function loggedOut() {
  state.user = null; state.exercise = null;
  setCsrf(null);
  stopEvents();
  if (location.hash !== '#/login') location.hash = '#/login';
  else route();
}

async function route() {
  const seq = ++renderSeq;
  cleanups.forEach((fn) => { try { fn(); } catch (e) { console.error(e); } });
  cleanups = [];
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const el = clear(document.getElementById('app'));
  if (!state.user && parts[0] !== 'login') { location.hash = '#/login'; return; }
  if (state.user && (parts.length === 0 || parts[0] === 'login')) { location.hash = homeFor(state.user); return; }
  renderChrome(parts);
  const ctx = {
    el,
    user: state.user,
    get exercise() { return state.exercise; },
    loggedIn,
    refreshExercise,
    go: (hash) => { location.hash = hash; },
    on: (fn) => { cleanups.push(onEvent(fn)); },
    every: (ms, fn) => { const id = setInterval(fn, ms); cleanups.push(() => clearInterval(id)); },
    cleanup: (fn) => { cleanups.push(fn); },
    alive: () => seq === renderSeq,
  };
  let loader;
  if (parts[0] === 'login') loader = () => import('./login.js');
  else if (parts[0] === 'team') {
    ctx.team = Number(parts[1]);
    ctx.args = parts.slice(3);
    loader = TEAM_VIEWS[parts[2] || 'map'];
  } else if (parts[0] === 'instructor') {
    ctx.args = parts.slice(2);
    loader = INSTRUCTOR_VIEWS[parts[1] || 'overview'];
  }
  if (!loader) { el.append(h('div', { class: 'alert alert-error' }, t('error.no_page'))); return; }
  try {
    const mod = await loader();
    if (seq !== renderSeq) return;
    await mod.render(ctx);
  } catch (err) {
    console.error(err);
    if (seq === renderSeq) el.append(errorBox(err));
  }
  if (seq === renderSeq) el.focus({ preventScroll: true });
}

async function main() {
  await initI18n();
  const sel = document.getElementById('lang-select');
  sel.value = getLang();
  sel.addEventListener('change', async () => { await setLang(sel.value); route(); });
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api.post('/api/logout'); } catch { /* the session is gone either way */ }
    loggedOut();
  });
  const live = document.getElementById('live');
  onStatus((st) => {
    live.dataset.state = st;
    live.textContent = { live: t('live.live'), connecting: t('live.connecting'), reconnecting: t('live.reconnecting'), offline: '' }[st];
  });
  onLoggedOut(loggedOut);
  onEvent((ev) => {
    if (ev.type === 'timeline' || ev.type === 'exercise') refreshExercise();
  });
  window.addEventListener('hashchange', route);
  try {
    const me = await api.get('/api/me');
    state.user = me.user;
    setCsrf(me.csrf);
    await refreshExercise();
    startEvents();
  } catch { state.user = null; }
  route();
}

main();
