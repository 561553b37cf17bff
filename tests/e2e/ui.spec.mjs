#!/usr/bin/env node
// ui.spec — end-to-end tests of the web UI in a real browser (Debian's
// chromium through playwright-core; no browser download) against a running
// server.  A plain node script: every test runs in order, failures do not
// stop the rest, and the last line is "N passed, N failed".
//
// Environment:
//   BASE_URL        http://127.0.0.1:8088 by default
//   E2E_MEMBER1     name:password of a member of one team
//   E2E_MEMBER2     name:password of a member of another team
//   E2E_INSTRUCTOR  name:password of an instructor
//   E2E_HOST        host to open a console on (default: the first running
//                   host of member 1's map that is not the attacker)
//   CHROMIUM        /usr/bin/chromium by default
//   SCREENSHOTS     build/e2e/screenshots by default (relative to the repo)
//   E2E_TIMEOUT_MS  per wait, 20000 by default
//   E2E_CONSOLE_LOGIN name:password of an account on that host (the serial
//                   console starts at a login prompt)
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BASE = (process.env.BASE_URL || 'http://127.0.0.1:8088').replace(/\/$/, '');
const SHOTS = resolve(REPO, process.env.SCREENSHOTS || 'build/e2e/screenshots');
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS || 20000);
const cred = (v, d) => { const [name, ...p] = (process.env[v] || d).split(':'); return { name, password: p.join(':') }; };
const M1 = cred('E2E_MEMBER1', 'alice:alice');
const M2 = cred('E2E_MEMBER2', 'bob:bob');
const INS = cred('E2E_INSTRUCTOR', 'ian:ian');
const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
const MISSING_KEY = /\[[a-z_]+\.[a-z0-9_]+\]/;

mkdirSync(SHOTS, { recursive: true });
const results = [];
const shared = {};

function check(cond, what) { if (!cond) throw new Error(what); }

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${err.message.split('\n').filter(Boolean).slice(0, 3).join(' | ')}`);
  }
}

async function shot(page, name) { await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true }); }

// A new browser context (its own cookies) logged in through the login page.
async function login(browser, who, lang = 'en') {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: lang === 'ja' ? 'ja-JP' : 'en-GB' });
  await ctx.addInitScript((l) => localStorage.setItem('cyrange.lang', l), lang);
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  if (process.env.E2E_DEBUG) {
    page.on('response', (r) => { if (r.url().includes('/api/')) console.log(`  ${who.name}: ${r.request().method()} ${r.url()} ${r.status()}`); });
    page.on('console', (m) => console.log(`  ${who.name} console: ${m.text()}`));
  }
  await page.goto(`${BASE}/#/login`);
  await page.fill('input[name=name]', who.name);
  await page.fill('input[name=password]', who.password);
  await page.click('form.login button[type=submit]');
  await page.waitForFunction(() => !location.hash.startsWith('#/login'));
  page.me = await api(page, 'GET', '/api/me');
  check(page.me.status === 200, `GET /api/me answered ${page.me.status}`);
  return page;
}

// An API call from inside the page (its cookie; CSRF token from /api/me).
async function api(page, method, path, body) {
  return page.evaluate(async ([m, p, b]) => {
    const headers = { 'Content-Type': 'application/json' };
    if (m !== 'GET') {
      const me = await (await fetch('/api/me')).json();
      headers['X-CSRF-Token'] = me.csrf;
    }
    const res = await fetch(p, { method: m, headers, body: b === undefined ? undefined : JSON.stringify(b) });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    return { status: res.status, json };
  }, [method, path, body]);
}

async function go(page, hash) {
  // The same hash again is no navigation: reload to see the server's state.
  if (page.url() === `${BASE}/${hash}`) await page.reload();
  else await page.goto(`${BASE}/${hash}`);
  await page.waitForFunction(() => document.querySelector('main').children.length > 0);
}

async function noErrors(page, where) {
  const err = await page.$('.api-error');
  check(!err, `${where}: ${err ? await err.innerText() : ''}`);
  const text = await page.innerText('body');
  const miss = MISSING_KEY.exec(text);
  check(!miss, `${where}: missing i18n key ${miss && miss[0]}`);
  check(!page.errors.length, `${where}: page error ${page.errors[0]}`);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
let member; let instructor; let member2;
try {
  await test('a team member logs in and sees the range map', async () => {
    member = await login(browser, M1);
    shared.team = member.me.json.user.team;
    check(shared.team > 0, 'member 1 has no team');
    await member.waitForSelector('.host-card');
    const hosts = await member.$$eval('.host-card', (els) => els.map((e) => ({ name: e.dataset.host, state: e.className })));
    check(hosts.length > 0, 'no hosts on the map');
    check(await member.$('.segment'), 'no segments on the map');
    await noErrors(member, 'map');
    await shot(member, 'team-map');
  });

  await test('the member opens a console on a host and runs a command', async () => {
    let host = process.env.E2E_HOST;
    if (!host) {
      const map = await api(member, 'GET', `/api/teams/${shared.team}/map`);
      const h = map.json.hosts.find((x) => x.state === 'running' && x.role !== 'attacker');
      check(h, 'no running host to open a console on');
      host = h.name;
    }
    shared.host = host;
    await member.click(`.host-card[data-host="${host}"] a.btn`);
    await member.waitForSelector('.console-status[data-state="open"]');
    await member.waitForSelector('.xterm-rows');
    await member.click('.console-screen');
    await member.keyboard.press('Enter');
    // A guest's serial console starts at its login prompt: log in with the
    // host's account when one is given (E2E_CONSOLE_LOGIN=name:password).
    if (process.env.E2E_CONSOLE_LOGIN) {
      const acct = cred('E2E_CONSOLE_LOGIN', '');
      const rows = () => document.querySelector('.xterm-rows').innerText;
      await member.waitForFunction((r) => eval(r)().includes('login:'), `(${rows})`);
      await member.keyboard.type(acct.name, { delay: 15 });
      await member.keyboard.press('Enter');
      await member.waitForFunction((r) => /assword/.test(eval(r)()), `(${rows})`);
      await member.keyboard.type(acct.password, { delay: 15 });
      await member.keyboard.press('Enter');
      await member.waitForTimeout(1000);
    }
    // The typed line holds "$((20+22))": only a shell that ran it prints 42.
    await member.keyboard.type(`echo e2e-$((20+22))-${RUN}`, { delay: 15 });
    await member.keyboard.press('Enter');
    await member.waitForFunction((m) => document.querySelector('.xterm-rows').innerText.includes(m), `e2e-42-${RUN}`);
    await noErrors(member, 'console');
    await shot(member, 'team-console');
  });

  await test('the member submits a finding', async () => {
    shared.finding = `e2e finding ${RUN}: beacon from ${shared.host}`;
    await go(member, `#/team/${shared.team}/findings`);
    await member.waitForSelector('form.findings-form');
    // An invalid finding first: the server's message is shown, nothing stored.
    await member.fill('textarea[name=description]', 'nothing named');
    await member.click('form.findings-form button[type=submit]');
    await member.waitForSelector('form.findings-form .alert-error');
    await member.fill('input[name=hosts]', shared.host);
    await member.fill('input[name=technique]', 'T1071.001');
    await member.fill('textarea[name=description]', shared.finding);
    await member.fill('textarea[name=action]', 'isolated the host');
    await member.click('form.findings-form button[type=submit]');
    await member.waitForSelector('form.findings-form .alert-ok');
    await member.waitForFunction((m) => document.querySelector('.findings-list') && document.querySelector('.findings-list').innerText.includes(m), shared.finding);
    const list = await api(member, 'GET', `/api/teams/${shared.team}/findings`);
    check(list.status === 200 && list.json.some((f) => f.description === shared.finding), 'the finding is not stored');
    check(!list.json.some((f) => f.description === 'nothing named'), 'an invalid finding was stored');
    await noErrors(member, 'findings');
    await shot(member, 'team-findings');
  });

  await test('the member writes and submits an incident report', async () => {
    shared.report = `e2e report ${RUN}`;
    await go(member, `#/team/${shared.team}/reports/new`);
    await member.waitForSelector('textarea[data-section]');
    await member.fill('input[name=title]', shared.report);
    const sections = await member.$$eval('textarea[data-section]', (els) => els.map((e) => e.dataset.section));
    check(sections.length >= 1, 'no report sections');
    for (const s of sections) await member.fill(`textarea[data-section="${s}"]`, `${s}: at 10:03 we saw ${shared.host} beacon to the C2; ${RUN}`);
    shared.sections = sections;
    // Save a draft first, then submit it as a second version.
    await member.click('.sticky-foot button:not(.btn-primary)');
    await member.waitForFunction(() => /#\/team\/\d+\/reports\/[^/]+$/.test(location.hash) && !location.hash.endsWith('/new'));
    await member.waitForSelector('textarea[data-section]:not([disabled])');
    await member.click('.sticky-foot button.btn-primary');
    await member.waitForSelector('.report-meta .badge-info');
    shared.reportId = decodeURIComponent(await member.evaluate(() => location.hash.split('/').pop()));
    const r = await api(member, 'GET', `/api/teams/${shared.team}/reports/${shared.reportId}`);
    check(r.status === 200 && r.json.state === 'submitted', `report state ${r.json && r.json.state}`);
    check(r.json.versions.length === 2, `expected 2 versions, got ${r.json.versions.length}`);
    await noErrors(member, 'report');
    await shot(member, 'team-report-submitted');
  });

  await test('an instructor comments, grades and returns the report', async () => {
    instructor = await login(browser, INS);
    check(instructor.me.json.user.role === 'instructor', 'E2E_INSTRUCTOR is not an instructor');
    await go(instructor, '#/instructor/review');
    await instructor.waitForSelector(`.review-queue tr[data-report="${shared.reportId}"] a`);
    await shot(instructor, 'instructor-review-queue');
    await instructor.click(`.review-queue tr[data-report="${shared.reportId}"] a`);
    const first = shared.sections[0];
    await instructor.waitForSelector(`.report-readonly[data-section="${first}"]`);
    // Select a phrase of the first section: it becomes the comment's quote.
    await instructor.evaluate((sec) => {
      const el = document.querySelector(`.report-readonly[data-section="${sec}"]`);
      const node = el.firstChild;
      const at = node.textContent.indexOf('beacon');
      const range = document.createRange();
      range.setStart(node, at); range.setEnd(node, at + 'beacon'.length);
      const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      el.dispatchEvent(new MouseEvent('mouseup', { bubbles: true }));
    }, first);
    check(await instructor.inputValue(`input[name="quote-${first}"]`) === 'beacon', 'the selection was not quoted');
    shared.comment = `e2e comment ${RUN}: which process made the beacon?`;
    await instructor.fill(`textarea[name="comment-${first}"]`, shared.comment);
    await instructor.click(`.report-section[data-section="${first}"] .report-comments button`);
    await instructor.waitForSelector('.comment-new');
    const grades = await instructor.$$('input[name^="grade-"]');
    for (const g of grades) await g.fill('1');
    await instructor.selectOption('select[name=decision]', 'return');
    await shot(instructor, 'instructor-review');
    // Focus first: in headless chromium, focus moving off a number input
    // scrolled the page between mousedown and mouseup.
    await instructor.focus('.sticky-foot button.btn-primary');
    await instructor.click('.sticky-foot button.btn-primary');
    await instructor.waitForSelector('.sticky-foot .alert-ok');
    const r = await api(instructor, 'GET', `/api/teams/${shared.team}/reports/${shared.reportId}`);
    check(r.json.state === 'returned', `report state ${r.json.state} after return`);
    const rv = r.json.reviews[r.json.reviews.length - 1];
    check(rv.comments.some((c) => c.text === shared.comment && c.quote === 'beacon' && c.section === first), 'the comment is not stored with its quote');
    check(Object.keys(rv.grades).length === grades.length, `expected ${grades.length} grades, got ${Object.keys(rv.grades).length}`);
    await noErrors(instructor, 'review');
  });

  await test('the member sees the comment beside the text and can revise', async () => {
    await go(member, `#/team/${shared.team}/reports/${shared.reportId}`);
    await member.waitForSelector('.report-comments .comment');
    const beside = await member.innerText(`.report-section[data-section="${shared.sections[0]}"] .report-comments`);
    check(beside.includes(shared.comment), 'the comment is not beside its section');
    check(await member.$('.report-meta .badge-warn'), 'the report is not shown as returned');
    check(await member.$('textarea[data-section]:not([disabled])'), 'a returned report cannot be edited');
    await noErrors(member, 'returned report');
    await shot(member, 'team-report-returned');
  });

  await test("another team's member cannot see the first team's data", async () => {
    member2 = await login(browser, M2);
    const other = member2.me.json.user.team;
    check(other > 0 && other !== shared.team, 'E2E_MEMBER2 must be in another team');
    for (const p of ['map', 'findings', 'reports', `reports/${shared.reportId}`, 'inbox', 'score', 'wire', 'pcaps', 'events?since=0']) {
      const r = await api(member2, 'GET', `/api/teams/${shared.team}/${p}`);
      check(r.status === 403, `GET /api/teams/${shared.team}/${p} answered ${r.status}, not 403`);
    }
    const w = await api(member2, 'POST', `/api/teams/${shared.team}/findings`, { description: 'x', hosts: [shared.host] });
    check(w.status === 403, `POST into another team answered ${w.status}`);
    const tl = await api(member2, 'GET', '/api/timeline');
    check(tl.status === 403, `GET /api/timeline answered ${tl.status} for a member`);
    await go(member2, `#/team/${shared.team}/findings`);
    await member2.waitForSelector('.api-error[data-status="403"]');
    await go(member2, `#/team/${shared.team}/reports`);
    await member2.waitForSelector('.api-error[data-status="403"]');
    await shot(member2, 'other-team-forbidden');
    const text = await member2.innerText('body');
    check(!text.includes(RUN), 'the other team\'s data is on the page');
    await go(member2, `#/team/${other}/findings`);
    await member2.waitForSelector('.findings-list, form.findings-form');
    check(!(await member2.innerText('body')).includes(RUN), "the first team's finding shows in the second team's list");
    const ex = await api(member2, 'GET', '/api/exercise');
    check(ex.json.teams.every((t) => t.team === other), 'GET /api/exercise lists other teams to a member');
  });

  await test('team screens render: inbox, capture, score, timeline', async () => {
    for (const v of ['inbox', 'capture', 'score', 'timeline']) {
      await go(member, `#/team/${shared.team}/${v}`);
      await member.waitForSelector('main h1');
      await member.waitForLoadState('networkidle');
      await noErrors(member, v);
      await shot(member, `team-${v}`);
    }
    await go(member, `#/team/${shared.team}/timeline`);
    await member.waitForSelector('.chart circle');
  });

  await test('instructor screens render: overview, controls, scoreboard, after-action report', async () => {
    for (const v of ['overview', 'controls', 'scoreboard', 'aar']) {
      await go(instructor, `#/instructor/${v}`);
      await instructor.waitForSelector('main h1');
      await instructor.waitForLoadState('networkidle');
      await noErrors(instructor, v);
      await shot(instructor, `instructor-${v}`);
    }
    await go(instructor, '#/instructor/overview');
    await instructor.waitForSelector(`.team-card[data-team="${shared.team}"]`);
    await go(instructor, '#/instructor/scoreboard');
    await instructor.waitForSelector('table.scoreboard tbody tr');
  });

  await test('the Japanese UI has every string', async () => {
    const ja = await login(browser, M1, 'ja');
    for (const v of ['map', 'findings', 'reports', 'inbox', 'score']) {
      await go(ja, `#/team/${shared.team}/${v}`);
      await ja.waitForSelector('main h1');
      await ja.waitForLoadState('networkidle');
      await noErrors(ja, `ja ${v}`);
    }
    check((await ja.innerText('#nav')).includes('検知報告'), 'the navigation is not in Japanese');
    await shot(ja, 'team-score-ja');
    await ja.context().close();
  });

  await test('logging out ends the session', async () => {
    await member2.click('#logout');
    await member2.waitForSelector('form.login');
    const r = await api(member2, 'GET', '/api/me');
    check(r.status === 401, `GET /api/me answered ${r.status} after logout`);
  });
} finally {
  await browser.close();
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`screenshots in ${SHOTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
